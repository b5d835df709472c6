/* test_reqrule.c: unit tests for src/policy/reqrule.c (network.requestRules).
 *
 * Pattern parsing (the canonical spelling a pattern is stored in, and the
 * errors), the path glob ("*" within a segment, "**" across), and req_decide:
 * deny wins, an allow list admits only what it lists, deny is
 * case-insensitive and ignores ";params", rules of other hosts do not apply.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/reqrule.h"

/* ---- patterns -------------------------------------------------------------- */

static void test_pattern_parse_ok(void **state)
{
    (void)state;
    static const struct {
        const char *in, *method, *path;
    } ok[] = {
        { "POST /v1/messages", "POST", "/v1/messages" },
        { "* /**", "*", "/**" },
        { "GET /a/*/b", "GET", "/a/*/b" },
        { "PROPFIND /dav/**", "PROPFIND", "/dav/**" },
        { "GET /v1/%7euser/%3a", "GET", "/v1/~user/%3A" }, /* the canonical spelling */
        { "GET /a/", "GET", "/a/" },
        { "GET /a;b", "GET", "/a;b" },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct req_pattern p;
        const char *why = NULL;
        if (req_pattern_parse(ok[i].in, &p, &why) < 0)
            fail_msg("\"%s\" refused: %s", ok[i].in, why);
        assert_string_equal(p.method, ok[i].method);
        assert_string_equal(p.path, ok[i].path);
        assert_string_equal(p.text, ok[i].in);
        req_pattern_free(&p);
    }
}

static void test_pattern_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *why;
    } bad[] = {
        { "GET/x", "one space" },
        { "GET  /x", "one space" },
        { "GET /x y", "one space" },
        { " /x", "empty" },
        { "VERYLONGMETHODNAMEOFMORETHANTHIRTYTWOBYTES /x", "too long" },
        { "G(T /x", "a token" },
        { "G* /x", "a token" },
        { "GET x", "start with \"/\"" },
        { "GET /a?b", "\"?\"" },
        { "GET /a#b", "\"#\"" },
        { "GET /a\tb", "control" },
        { "GET /\xc3\xa9", "non-ASCII" },
        { "GET /a/../b", "\"..\" segment" },
        { "GET /a/./b", "\".\" or \"..\" segment" },
        { "GET /a/..", "\"..\" segment" },
        { "GET /a//b", "\"//\"" },
        { "GET /a%2Fb", "encoded \"/\"" },
        { "GET /a%2", "malformed" },
        { "GET /a\\b", "\"\\\"" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct req_pattern p;
        const char *why = NULL;
        if (req_pattern_parse(bad[i].in, &p, &why) == 0)
            fail_msg("\"%s\" accepted", bad[i].in);
        assert_non_null(why);
        if (!strstr(why, bad[i].why))
            fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].in, why, bad[i].why);
        assert_null(p.path);
    }
}

/* ---- the glob -------------------------------------------------------------- */

static void test_glob(void **state)
{
    (void)state;
    static const struct {
        const char *pat, *path;
        bool exact, folded;
    } g[] = {
        { "/v1/messages", "/v1/messages", true, true },
        { "/v1/messages", "/v1/messages/", false, false },
        { "/v1/messages", "/V1/Messages", false, true },
        { "/v1/*", "/v1/messages", true, true },
        { "/v1/*", "/v1/", true, true },            /* "*" may be empty */
        { "/v1/*", "/v1/a/b", false, false },       /* not across "/" */
        { "/v1/**", "/v1/a/b/c", true, true },
        { "/v1/**", "/v1/", true, true },
        { "/v1/**", "/v1", false, false },
        { "/**/git-receive-pack", "/org/repo.git/git-receive-pack", true, true },
        { "/**/git-receive-pack", "/git-receive-pack", false, false }, /* a "/" too */
        { "/**git-receive-pack", "/git-receive-pack", true, true },
        { "/*.git/info/refs", "/repo.git/info/refs", true, true },
        { "/*.git/info/refs", "/org/repo.git/info/refs", false, false },
        { "/a*b*c", "/aXbYc", true, true },
        { "/a*b*c", "/aXbY/c", false, false },
        { "/**", "/", true, true },
        { "/", "/", true, true },
        { "/x", "/", false, false },
        { "/*/*/*/*/*/*/*/*/*/*/*/*/*/*/*z", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a", false, false },
        { "/**/**/**/**/**/**/**/**/**/**/**/z", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false },
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        if (req_path_match(g[i].pat, g[i].path, false) != g[i].exact)
            fail_msg("\"%s\" ~ \"%s\" (exact): expected %d", g[i].pat, g[i].path, g[i].exact);
        if (req_path_match(g[i].pat, g[i].path, true) != g[i].folded)
            fail_msg("\"%s\" ~ \"%s\" (folded): expected %d", g[i].pat, g[i].path, g[i].folded);
    }
}

static void test_glob_long_path_refused(void **state)
{
    (void)state;
    char *p = malloc(9000);
    assert_non_null(p);
    memset(p, 'a', 8999);
    p[0] = '/';
    p[8999] = '\0';
    assert_false(req_path_match("/**", p, false));
    p[8193] = '\0';
    assert_false(req_path_match("/**", p, false));
    p[8192] = '\0';
    assert_true(req_path_match("/**", p, false));
    free(p);
}

/* ---- decisions ------------------------------------------------------------- */

struct ruleset {
    struct req_rule r[3];
    size_t n;
};

static void add_rule(struct ruleset *s, const char *host, const char *const *allow,
                     const char *const *deny)
{
    struct req_rule *r = &s->r[s->n++];
    memset(r, 0, sizeof(*r));
    const char *why = NULL;
    if (net_entry_parse(host, false, &r->host, &why) < 0)
        fail_msg("host %s: %s", host, why);
    if (allow) {
        r->has_allow = true;
        for (const char *const *a = allow; *a; a++) {
            r->allow = realloc(r->allow, (r->nallow + 1) * sizeof(*r->allow));
            assert_non_null(r->allow);
            assert_int_equal(req_pattern_parse(*a, &r->allow[r->nallow++], &why), 0);
        }
    }
    for (const char *const *d = deny; d && *d; d++) {
        r->deny = realloc(r->deny, (r->ndeny + 1) * sizeof(*r->deny));
        assert_non_null(r->deny);
        assert_int_equal(req_pattern_parse(*d, &r->deny[r->ndeny++], &why), 0);
    }
}

static void free_rules(struct ruleset *s)
{
    for (size_t i = 0; i < s->n; i++)
        req_rule_free(&s->r[i]);
}

static struct req_verdict decide(struct ruleset *s, const char *host, int port, const char *m,
                                 const char *path)
{
    struct net_target t;
    const char *why = NULL;
    if (net_canon_host(host, &t, &why) < 0)
        fail_msg("%s: %s", host, why);
    t.port = (uint16_t)port;
    return req_decide(s->r, s->n, &t, m, path);
}

static void test_anthropic_rule(void **state)
{
    (void)state;
    struct ruleset s = { .n = 0 };
    static const char *const allow[] = { "POST /v1/messages", NULL };
    add_rule(&s, "api.anthropic.com", allow, NULL);

    struct req_verdict v = decide(&s, "api.anthropic.com", 443, "POST", "/v1/messages");
    assert_true(v.allow);
    assert_int_equal(v.rule, 0);
    assert_string_equal(v.pattern, "POST /v1/messages");

    v = decide(&s, "api.anthropic.com", 443, "POST", "/v1/files");
    assert_false(v.allow);
    assert_int_equal(v.rule, 0);
    assert_null(v.pattern);
    assert_non_null(strstr(v.reason, "no allow rule"));

    /* Method and path are exact for allow: a spelling the rule did not
     * write is refused, not guessed at. */
    assert_false(decide(&s, "api.anthropic.com", 443, "GET", "/v1/messages").allow);
    assert_false(decide(&s, "api.anthropic.com", 443, "post", "/v1/messages").allow);
    assert_false(decide(&s, "api.anthropic.com", 443, "POST", "/V1/messages").allow);
    assert_false(decide(&s, "api.anthropic.com", 443, "POST", "/v1/messages/").allow);
    assert_false(decide(&s, "api.anthropic.com", 443, "POST", "/v1/messages;x").allow);

    /* Other hosts: no rule covers them, so nothing is decided here. */
    v = decide(&s, "example.com", 443, "POST", "/v1/files");
    assert_true(v.allow);
    assert_int_equal(v.rule, -1);
    assert_true(decide(&s, "x.api.anthropic.com", 443, "POST", "/v1/files").allow);
    free_rules(&s);
}

static void test_deny_wins_and_folds(void **state)
{
    (void)state;
    struct ruleset s = { .n = 0 };
    static const char *const allow[] = { "* /**", NULL };
    static const char *const deny[] = { "POST /v1/files", "* /**/git-receive-pack", NULL };
    add_rule(&s, "*.example.com", allow, deny);

    struct req_verdict v = decide(&s, "api.example.com", 443, "POST", "/v1/files");
    assert_false(v.allow);
    assert_string_equal(v.pattern, "POST /v1/files");
    assert_non_null(strstr(v.reason, "deny rule"));
    /* A lenient server reads these as /v1/files: so does a deny rule. */
    assert_false(decide(&s, "api.example.com", 443, "post", "/v1/files").allow);
    assert_false(decide(&s, "api.example.com", 443, "POST", "/V1/FILES").allow);
    assert_false(decide(&s, "api.example.com", 443, "POST", "/v1/files;jsessionid=1").allow);
    assert_false(decide(&s, "api.example.com", 443, "POST", "/v1;a/files;b").allow);
    assert_false(decide(&s, "api.example.com", 443, "POST", "/v1/files/").allow);
    assert_false(decide(&s, "api.example.com", 443, "POST", "/v1/files;x/").allow);
    v = decide(&s, "git.example.com", 443, "POST", "/org/repo.git/git-receive-pack");
    assert_false(v.allow);
    assert_string_equal(v.pattern, "* /**/git-receive-pack");
    /* What the deny does not name passes through the allow list. */
    v = decide(&s, "api.example.com", 443, "GET", "/v1/files");
    assert_true(v.allow);
    assert_string_equal(v.pattern, "* /**");
    assert_true(decide(&s, "git.example.com", 443, "POST", "/org/repo.git/git-upload-pack").allow);
    /* "*.example.com" does not cover the apex. */
    assert_int_equal(decide(&s, "example.com", 443, "POST", "/v1/files").rule, -1);
    free_rules(&s);
}

static void test_deny_only_rule(void **state)
{
    (void)state;
    struct ruleset s = { .n = 0 };
    static const char *const deny[] = { "DELETE /**", NULL };
    add_rule(&s, "registry.test", NULL, deny);
    assert_true(decide(&s, "registry.test", 443, "GET", "/pkg").allow);
    assert_true(decide(&s, "registry.test", 443, "PUT", "/pkg").allow);
    assert_false(decide(&s, "registry.test", 443, "DELETE", "/pkg").allow);
    free_rules(&s);
}

static void test_rules_combine(void **state)
{
    (void)state;
    /* Two rules cover the host: a deny in either refuses; an allow in
     * either admits. */
    struct ruleset s = { .n = 0 };
    static const char *const allow_a[] = { "GET /**", "HEAD /**", NULL };
    static const char *const allow_b[] = { "POST /upload", NULL };
    static const char *const deny_b[] = { "GET /secret/**", NULL };
    add_rule(&s, "registry.test", allow_a, NULL);
    add_rule(&s, "*.registry.test:8443", allow_b, deny_b);
    add_rule(&s, "registry.test:8443", allow_b, deny_b);

    assert_true(decide(&s, "registry.test", 443, "GET", "/secret/x").allow);
    assert_false(decide(&s, "registry.test", 443, "POST", "/upload").allow);
    struct req_verdict v = decide(&s, "registry.test", 8443, "GET", "/secret/x");
    assert_false(v.allow);
    assert_int_equal(v.rule, 2);
    v = decide(&s, "registry.test", 8443, "POST", "/upload");
    assert_true(v.allow);
    assert_int_equal(v.rule, 2);
    assert_true(decide(&s, "registry.test", 8443, "HEAD", "/x").allow);
    assert_false(decide(&s, "registry.test", 8443, "PUT", "/x").allow);
    free_rules(&s);
}

static void test_empty_allow_list_refuses_all(void **state)
{
    (void)state;
    struct ruleset s = { .n = 0 };
    static const char *const none[] = { NULL };
    add_rule(&s, "blocked.test", none, NULL);
    struct req_verdict v = decide(&s, "blocked.test", 80, "GET", "/");
    assert_false(v.allow);
    assert_int_equal(v.rule, 0);
    free_rules(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_parse_ok),
        cmocka_unit_test(test_pattern_parse_errors),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_glob_long_path_refused),
        cmocka_unit_test(test_anthropic_rule),
        cmocka_unit_test(test_deny_wins_and_folds),
        cmocka_unit_test(test_deny_only_rule),
        cmocka_unit_test(test_rules_combine),
        cmocka_unit_test(test_empty_allow_list_refuses_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
