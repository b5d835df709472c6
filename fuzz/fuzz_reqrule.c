/* fuzz_reqrule.c: libFuzzer target for request-rule patterns and the path
 * glob (src/policy/reqrule.c). Patterns come from settings files and paths
 * from the sandbox, so both sides are untrusted.
 *
 * Input: "PATTERN\nPATH". Invariants, each an abort() when broken:
 *  - req_pattern_parse returns 0 or -1 with a reason; on success the text is
 *    the input, the method is "*" or a token, and the stored path starts
 *    with "/" and is its own canonical spelling (parsing "METHOD stored"
 *    again stores the same path);
 *  - the glob is deterministic, never slower than pattern x path (the
 *    fuzzer's timeout catches blow-ups), and case folding only widens it:
 *    an exact match is a folded match;
 *  - the pattern "/" "**" matches every path that starts with "/"; a pattern without "*"
 *    matches exactly itself;
 *  - req_decide with one rule allowing only the pattern admits the path iff
 *    the glob matches (method equal), and with the pattern as a deny refuses
 *    the path when the folded glob matches.
 */
#include "fuzz.h"

#include "policy/reqrule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_reqrule: invariant broken: %s (%s:%d)\n", #cond,    \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 20000)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (strlen(buf) != size) { /* a NUL: C strings cannot carry it */
        free(buf);
        return 0;
    }
    char *nl = strchr(buf, '\n');
    const char *path = "/";
    if (nl) {
        *nl = '\0';
        path = nl + 1;
    }
    const char *pat_text = buf;

    /* The glob on the raw halves, whatever they are. */
    bool e1 = req_path_match(pat_text, path, false);
    bool f1 = req_path_match(pat_text, path, true);
    CHECK(e1 == req_path_match(pat_text, path, false));
    CHECK(!e1 || f1);
    if (path[0] == '/' && strlen(path) <= 8192)
        CHECK(req_path_match("/**", path, false));
    if (!strchr(pat_text, '*'))
        CHECK(e1 == (strcmp(pat_text, path) == 0));

    struct req_pattern p;
    const char *why = NULL;
    if (req_pattern_parse(pat_text, &p, &why) < 0) {
        CHECK(why && *why && !p.path && !p.text);
        free(buf);
        return 0;
    }
    CHECK(strcmp(p.text, pat_text) == 0 && p.path[0] == '/');
    CHECK(strcmp(p.method, "*") == 0 || !strchr(p.method, '*'));
    {
        size_t l = strlen(p.method) + 1 + strlen(p.path) + 1;
        char *again = malloc(l);
        if (!again)
            abort();
        snprintf(again, l, "%s %s", p.method, p.path);
        struct req_pattern q;
        CHECK(req_pattern_parse(again, &q, &why) == 0);
        CHECK(strcmp(q.path, p.path) == 0);
        req_pattern_free(&q);
        free(again);
    }

    struct req_rule rule;
    memset(&rule, 0, sizeof(rule));
    CHECK(net_entry_parse("fuzz.test", false, &rule.host, &why) == 0);
    struct net_target t;
    CHECK(net_canon_host("fuzz.test", &t, &why) == 0);
    t.port = 443;
    const char *method = strcmp(p.method, "*") == 0 ? "GET" : p.method;

    rule.allow = &p;
    rule.nallow = 1;
    rule.has_allow = true;
    struct req_verdict v = req_decide(&rule, 1, &t, method, path);
    CHECK(v.allow == req_path_match(p.path, path, false));
    CHECK(v.rule == 0);

    rule.allow = NULL;
    rule.nallow = 0;
    rule.has_allow = false;
    rule.deny = &p;
    rule.ndeny = 1;
    v = req_decide(&rule, 1, &t, method, path);
    if (req_path_match(p.path, path, true))
        CHECK(!v.allow && v.pattern == p.text);

    net_entry_free(&rule.host);
    req_pattern_free(&p);
    free(buf);
    return 0;
}
