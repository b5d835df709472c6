/* fuzz_settings.c: libFuzzer target for the settings parser
 * (cordon_policy_load_string, src/policy/settings.c).
 *
 * Settings are untrusted input (DESIGN.md: every parser has a fuzz target
 * whose corpus also runs in the normal suite). The input bytes, NUL-terminated,
 * are one settings document. Invariants, each an abort() when broken:
 *  - failure: a negative return equal to -err.code, err.code > 0, *out left
 *    NULL, err.msg a non-empty NUL-terminated string that names the document;
 *  - success: err untouched; every path in the four filesystem lists (and in
 *    git.safeDirectories) is absolute and normalised: starts with "/", no
 *    "//", "/./", "/../", no trailing "/" or "/." or "/.." (policy.h);
 *  - success: cordon_policy_to_json returns valid JSON that, loaded again
 *    with the same options, succeeds and serialises to the identical string
 *    (the effective policy is a fixed point; --print-policy output is a
 *    settings file that means the same).
 */
#include "fuzz.h"

#include "cordon.h"
#include "policy/policy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz-settings.json"

static const struct cordon_load_opts OPTS = { .home = "/home/u", .cwd = "/work/p" };

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_settings: invariant broken: %s (%s:%d)\n", #cond,   \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static void check_path(const char *s)
{
    size_t n = strlen(s);
    if (n > 0 && s[0] == '/' && !strstr(s, "//") && !strstr(s, "/./") && !strstr(s, "/../") &&
        (n == 1 || (s[n - 1] != '/' && strcmp(s + n - 2, "/.") != 0 &&
                    (n < 3 || strcmp(s + n - 3, "/..") != 0))))
        return;
    fprintf(stderr, "fuzz_settings: path not absolute and normalised: \"%s\"\n", s);
    abort();
}

static void check_policy(const cordon_policy *p)
{
    const struct cordon_pathlist *lists[] = { &p->fs.deny_read, &p->fs.allow_read,
                                              &p->fs.allow_write, &p->fs.deny_write };
    for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
        for (size_t i = 0; i < lists[k]->n; i++) {
            CHECK(lists[k]->v[i].path != NULL);
            CHECK(lists[k]->v[i].as_written != NULL);
            check_path(lists[k]->v[i].path);
        }
    }
    for (size_t i = 0; i < p->git_safe_directories.n; i++)
        check_path(p->git_safe_directories.v[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    cordon_policy *p = NULL;
    struct cordon_error err;
    err.code = 0;
    memset(err.msg, 'X', sizeof(err.msg)); /* not terminated: must be written on failure */
    int r = cordon_policy_load_string(text, NAME, &OPTS, &p, &err);
    free(text);

    if (r != 0) {
        CHECK(r < 0);
        CHECK(p == NULL);
        CHECK(err.code > 0);
        CHECK(r == -err.code);
        CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        CHECK(err.msg[0] != '\0');
        CHECK(strstr(err.msg, NAME) != NULL);
        return 0;
    }

    CHECK(p != NULL);
    CHECK(err.code == 0);
    for (size_t i = 0; i < sizeof(err.msg); i++)
        CHECK(err.msg[i] == 'X'); /* success never touches err */
    check_policy(p);

    char *a = cordon_policy_to_json(p);
    CHECK(a != NULL);
    json_error_t jerr;
    json_t *v = json_loads(a, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        fprintf(stderr, "fuzz_settings: to_json is not valid JSON (%s):\n%s\n", jerr.text, a);
        abort();
    }
    CHECK(json_is_object(v));
    json_decref(v);

    cordon_policy *q = NULL;
    struct cordon_error err2 = { 0 };
    if (cordon_policy_load_string(a, NAME, &OPTS, &q, &err2) != 0) {
        fprintf(stderr, "fuzz_settings: to_json output does not load again: %s\n%s\n",
                err2.msg, a);
        abort();
    }
    check_policy(q);
    char *b = cordon_policy_to_json(q);
    CHECK(b != NULL);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "fuzz_settings: to_json is not idempotent:\n%s\n---\n%s\n", a, b);
        abort();
    }
    free(b);
    cordon_policy_free(q);
    free(a);
    cordon_policy_free(p);
    return 0;
}
