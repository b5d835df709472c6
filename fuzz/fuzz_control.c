/* fuzz_control.c: libFuzzer target for --control-fd lines
 * (policy_update_parse, src/policy/update.c): whatever holds the control fd
 * writes one settings document per line, and only the live network keys may
 * change while the command runs.
 *
 * The live policy is fixed (filesystem lists, allowed and denied domains,
 * request rules, limits). The input, up to its first newline or NUL (the
 * reader splits lines at '\n' and hands over C strings), is one line.
 * Invariants, each an abort() when broken:
 *  - EMPTY exactly when the line is blanks, tabs and CRs (the trimming is
 *    leading blank/tab/CR, trailing blank/CR), with no policy;
 *  - INVALID exactly when the trimmed line does not load as settings, with
 *    the loader's message (naming the line) as the reason and no policy;
 *  - FIXED and OK split valid lines by one rule, checked independently
 *    here: the two policies' JSON with the live keys removed from "network"
 *    (allowedDomains, deniedDomains, deniedDomainReasons,
 *    deniedResolvedAddresses, strictAllowlist, defaultPorts) are equal
 *    exactly for OK. FIXED names a key that is not a live key, and no policy
 *    comes back;
 *  - OK: the same line applied to the new policy is OK again and gives the
 *    same policy (to_json), and so does the new policy's own JSON as a line;
 *  - blanks and CRs around the line change nothing.
 * The live policy's JSON, as a line, is OK (checked once at start-up).
 */
#include "fuzz.h"

#include "cordon.h"
#include "policy/update.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_control: invariant broken: %s (%s:%d)\n", #cond,    \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

#define NAME "control line 1"

static const struct cordon_load_opts OPTS = { .home = "/home/u", .cwd = "/work/p" };

static const char LIVE[] =
    "{\"network\": {\"allowedDomains\": [\"api.example.com\", \"*.pkg.example:8443\"],"
    " \"deniedDomains\": [\"evil.example\"], \"deniedDomainReasons\": {\"evil.example\": \"no\"},"
    " \"requestRules\": [{\"host\": \"api.example.com\", \"allow\": [\"GET /v1/**\"]}]},"
    " \"filesystem\": {\"denyRead\": [\"~/.ssh\"], \"allowWrite\": [\".\", \"/tmp\"],"
    " \"denyWrite\": [\".env\"]},"
    " \"limits\": {\"nproc\": 512}}";

static const char *const live_keys[] = {
    "allowedDomains", "deniedDomains", "deniedDomainReasons", "deniedResolvedAddresses",
    "strictAllowlist", "defaultPorts",
};

static cordon_policy *g_live;

/* A policy's JSON on one line (to_json indents), as a control line. */
static char *line_of(const cordon_policy *p)
{
    char *s = cordon_policy_to_json(p);
    CHECK(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    CHECK(j);
    char *l = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    CHECK(l && !strchr(l, '\n'));
    return l;
}

static cordon_policy *load_live(void)
{
    if (g_live)
        return g_live;
    struct cordon_error e = { 0 };
    if (cordon_policy_load_string(LIVE, "live", &OPTS, &g_live, &e) < 0) {
        fprintf(stderr, "fuzz_control: the live policy does not load: %s\n", e.msg);
        abort();
    }
    /* its own JSON is a valid update that changes nothing */
    char *j = line_of(g_live);
    cordon_policy *np = NULL;
    char why[1024];
    CHECK(policy_update_parse(g_live, j, NAME, &OPTS, &np, why, sizeof(why)) ==
          POLICY_UPDATE_OK);
    char *k = cordon_policy_to_json(np), *l = cordon_policy_to_json(g_live);
    CHECK(k && l && strcmp(k, l) == 0);
    cordon_policy_free(np);
    free(k);
    free(l);
    free(j);
    return g_live;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    load_live();
    return 0;
}

/* The policy's JSON without the live keys. */
static json_t *fixed_json(const cordon_policy *p)
{
    char *s = cordon_policy_to_json(p);
    CHECK(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    CHECK(j);
    json_t *net = json_object_get(j, "network");
    for (size_t i = 0; net && i < sizeof(live_keys) / sizeof(live_keys[0]); i++)
        json_object_del(net, live_keys[i]);
    return j;
}

static bool is_live_key(const char *k)
{
    for (size_t i = 0; i < sizeof(live_keys) / sizeof(live_keys[0]); i++)
        if (strcmp(k, live_keys[i]) == 0)
            return true;
    return false;
}

/* policy_update_parse on a copy of s (it trims in place). */
static enum policy_update parse(const cordon_policy *live, const char *s, cordon_policy **out,
                                char *why, size_t whyn)
{
    char *line = strdup(s);
    CHECK(line);
    why[0] = '\0';
    enum policy_update u = policy_update_parse(live, line, NAME, &OPTS, out, why, whyn);
    free(line);
    return u;
}

static char *json_of(const cordon_policy *p)
{
    char *s = cordon_policy_to_json(p);
    CHECK(s);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const cordon_policy *live = load_live();
    if (size > 64 * 1024)
        return 0;
    size_t n = 0;
    while (n < size && data[n] != '\n' && data[n] != '\0')
        n++;
    char *line = malloc(n + 1);
    CHECK(line);
    memcpy(line, data, n);
    line[n] = '\0';

    /* the trimming, independently */
    size_t b = 0, e = n;
    while (b < e && (line[b] == ' ' || line[b] == '\t' || line[b] == '\r'))
        b++;
    while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\r'))
        e--;
    char *trimmed = strndup(line + b, e - b);
    CHECK(trimmed);

    cordon_policy *np = (cordon_policy *)1;
    char why[1024];
    enum policy_update u = parse(live, line, &np, why, sizeof(why));
    CHECK(u == POLICY_UPDATE_EMPTY || u == POLICY_UPDATE_INVALID || u == POLICY_UPDATE_FIXED ||
          u == POLICY_UPDATE_OK);
    CHECK((np != NULL) == (u == POLICY_UPDATE_OK));
    CHECK((u == POLICY_UPDATE_EMPTY) == (e == b));

    /* blanks and CRs around it change nothing */
    {
        size_t wl = n + 6;
        char *wrapped = malloc(wl + 1);
        CHECK(wrapped);
        snprintf(wrapped, wl + 1, " \t\r%s \r ", line);
        cordon_policy *wp = NULL;
        char why2[1024];
        CHECK(parse(live, wrapped, &wp, why2, sizeof(why2)) == u);
        if (u == POLICY_UPDATE_OK) {
            char *x = json_of(np), *y = json_of(wp);
            CHECK(strcmp(x, y) == 0);
            free(x);
            free(y);
        } else if (u != POLICY_UPDATE_EMPTY) {
            CHECK(strcmp(why, why2) == 0);
        }
        cordon_policy_free(wp);
        free(wrapped);
    }

    if (u != POLICY_UPDATE_EMPTY) {
        cordon_policy *lp = NULL;
        struct cordon_error err = { 0 };
        int r = cordon_policy_load_string(trimmed, NAME, &OPTS, &lp, &err);
        CHECK((r < 0) == (u == POLICY_UPDATE_INVALID));
        if (u == POLICY_UPDATE_INVALID) {
            CHECK(why[0] && strcmp(why, err.msg) == 0 && strstr(why, NAME));
        } else {
            json_t *a = fixed_json(live), *c = fixed_json(lp);
            bool same = json_equal(a, c);
            json_decref(a);
            json_decref(c);
            CHECK(same == (u == POLICY_UPDATE_OK));
            if (u == POLICY_UPDATE_FIXED) {
                CHECK(why[0]);
                if (strncmp(why, "network.", 8) == 0)
                    CHECK(!is_live_key(why + 8));
            }
            cordon_policy_free(lp);
        }
    }

    if (u == POLICY_UPDATE_OK) {
        char *j1 = json_of(np);
        /* again, against the new policy */
        cordon_policy *np2 = NULL;
        CHECK(parse(np, line, &np2, why, sizeof(why)) == POLICY_UPDATE_OK);
        char *j2 = json_of(np2);
        CHECK(strcmp(j1, j2) == 0);
        free(j2);
        cordon_policy_free(np2);
        /* its own JSON, as a line */
        np2 = NULL;
        char *l1 = line_of(np);
        CHECK(parse(live, l1, &np2, why, sizeof(why)) == POLICY_UPDATE_OK);
        j2 = json_of(np2);
        CHECK(strcmp(j1, j2) == 0);
        free(j2);
        free(l1);
        cordon_policy_free(np2);
        free(j1);
        cordon_policy_free(np);
    }
    free(trimmed);
    free(line);
    return 0;
}
