/* test_pathnorm.c: unit tests for src/proxy/pathnorm.c, the one spelling of
 * a request target that request rules judge and the proxy forwards.
 *
 * Each case gives a target, a mode and either the canonical result or a
 * substring of the refusal. Every accepted result is normalised again and
 * must come back unchanged (the fuzz target checks the same on random input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/pathnorm.h"

struct pn_case {
    const char *name;
    const char *in;
    enum path_mode mode;
    const char *out;     /* NULL: refused */
    size_t path_len;     /* for accepted cases */
    const char *why;     /* for refused cases: a substring of the reason */
};

#define OK(n, i, m, o, pl) { n, i, m, o, pl, NULL }
#define NO(n, i, m, w) { n, i, m, NULL, 0, w }
#define R PATH_REFUSE
#define N PATH_NORMALIZE
#define S PATH_AS_SPELLED

static const struct pn_case cases[] = {
    OK("root", "/", R, "/", 1),
    OK("plain", "/v1/messages", R, "/v1/messages", 12),
    OK("query kept as sent", "/a?x=%2f&y=..//", R, "/a?x=%2f&y=..//", 2),
    OK("trailing slash kept", "/v1/files/", R, "/v1/files/", 10),
    OK("unreserved escapes decoded", "/%7euser/%41%62-%5F", R, "/~user/Ab-_", 11),
    OK("reserved escapes kept, hex upper-cased", "/a%3ab%40c", R, "/a%3Ab%40c", 10),
    OK("double encoding is one escape", "/a%252e%252e", R, "/a%252e%252e", 12),
    OK("dot segment removed", "/v1/./files", R, "/v1/files", 9),
    OK("dot-dot removed", "/v1/messages/../files", R, "/v1/files", 9),
    OK("dot-dot at the end keeps a slash", "/a/b/..", R, "/a/", 3),
    OK("dot at the end keeps a slash", "/a/.", R, "/a/", 3),
    OK("dot-dot to the root", "/a/..", R, "/", 1),
    OK("root dot", "/.", R, "/", 1),
    OK("dots inside a name stay", "/a.b/..c/c../...", R, "/a.b/..c/c../...", 16),
    OK("semicolon params are kept (deny rules strip them)", "/v1/files;x", R, "/v1/files;x", 11),
    OK("star is an ordinary byte", "/a/*/b", R, "/a/*/b", 6),
    NO("encoded slash", "/v1%2Ffiles", R, "encoded \"/\""),
    NO("encoded slash, lower case", "/v1%2ffiles", R, "encoded \"/\""),
    NO("encoded backslash", "/v1%5cfiles", R, "encoded \"/\" or \"\\\""),
    NO("encoded dot", "/v1/messages/%2e%2e/files", R, "encoded \".\""),
    NO("encoded dot, upper case", "/v1/%2E/files", R, "encoded \".\""),
    NO("dot-dot then encoded slash", "/v1/messages/..%2Ffiles", R, "encoded \"/\""),
    NO("raw backslash", "/v1\\files", R, "\"\\\""),
    NO("encoded NUL", "/v1/files%00", R, "control byte"),
    NO("encoded tab", "/v1/fi%09les", R, "control byte"),
    NO("encoded DEL", "/v1/%7f", R, "control byte"),
    NO("raw tab", "/v1/fi\tles", R, "control byte"),
    NO("raw space", "/v1/a b", R, "control byte, space"),
    NO("non-ASCII", "/v1/\xc3\xa9", R, "non-ASCII"),
    OK("encoded UTF-8 kept", "/wiki/%c3%a9t%C3%A9", R, "/wiki/%C3%A9t%C3%A9", 19),
    OK("encoded 4-byte UTF-8 kept", "/%F0%9F%98%80", R, "/%F0%9F%98%80", 13),
    NO("overlong UTF-8 dot (two bytes)", "/%c0%ae%c0%ae/files", R, "not UTF-8"),
    NO("overlong UTF-8 dot (three bytes)", "/%e0%80%ae/files", R, "not UTF-8"),
    NO("UTF-8 surrogate", "/%ed%a0%80", R, "not UTF-8"),
    NO("stray continuation byte", "/%80", R, "not UTF-8"),
    NO("UTF-8 cut short at the end", "/a%c3", R, "cut short"),
    NO("UTF-8 cut short by a raw byte", "/%c3a", R, "cut short"),
    NO("UTF-8 above U+10FFFF", "/%f4%90%80%80", R, "not UTF-8"),
    NO("empty segment", "//v1/files", R, "\"//\""),
    NO("empty segment inside", "/v1//files", R, "\"//\""),
    NO("climbs above the root", "/../etc", R, "above the root"),
    NO("climbs above the root later", "/a/../../b", R, "above the root"),
    NO("truncated escape", "/a%4", R, "malformed"),
    NO("bad hex", "/a%zz", R, "malformed"),
    NO("not absolute", "v1/files", R, "start with"),
    NO("empty", "", R, "start with"),
    NO("encoded NUL in the query", "/a?x=%00", R, "control byte"),
    NO("fragment in the query", "/a?x#y", R, "query"),
    OK("normalize: empty segments merged", "//v1//files", N, "/v1/files", 9),
    OK("normalize: trailing double slash", "/v1//", N, "/v1/", 4),
    NO("normalize: still refuses encoded slash", "/v1%2Ffiles", N, "encoded \"/\""),
    NO("normalize: still refuses climbing", "/..", N, "above the root"),
    OK("asSpelled: forwarded as sent", "/v1/./a/../b%7e", S, "/v1/./a/../b%7e", 15),
    NO("asSpelled: control bytes still refused", "/v1/%00", S, "control byte"),
};

static void run_case(void **state)
{
    const struct pn_case *c = *state;
    char out[PATH_MAX_TARGET + 1];
    size_t pl = 0;
    const char *why = NULL;
    long r = path_normalize(c->in, strlen(c->in), c->mode, out, sizeof(out), &pl, &why);
    if (!c->out) {
        if (r >= 0)
            fail_msg("%s: accepted as \"%s\", expected a refusal", c->name, out);
        assert_non_null(why);
        if (c->why && !strstr(why, c->why))
            fail_msg("%s: reason \"%s\" lacks \"%s\"", c->name, why, c->why);
        return;
    }
    if (r < 0)
        fail_msg("%s: refused (%s)", c->name, why);
    assert_string_equal(out, c->out);
    assert_int_equal(r, strlen(c->out));
    assert_int_equal(pl, c->path_len);
    /* Idempotent: the canonical form is its own canonical form. */
    char again[PATH_MAX_TARGET + 1];
    size_t pl2 = 0;
    long r2 = path_normalize(out, (size_t)r, c->mode, again, sizeof(again), &pl2, &why);
    assert_int_equal(r2, r);
    assert_string_equal(again, out);
    assert_int_equal(pl2, pl);
}

static void test_too_long(void **state)
{
    (void)state;
    static char big[PATH_MAX_TARGET + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    char out[sizeof(big)];
    size_t pl;
    const char *why = NULL;
    assert_int_equal(path_normalize(big, PATH_MAX_TARGET + 1, PATH_REFUSE, out, sizeof(out), &pl,
                                    &why),
                     -1);
    assert_non_null(strstr(why, "too long"));
    /* At the limit it is accepted. */
    assert_int_equal(path_normalize(big, PATH_MAX_TARGET, PATH_REFUSE, out, sizeof(out), &pl, &why),
                     PATH_MAX_TARGET);
}

static void test_small_output_refused(void **state)
{
    (void)state;
    char out[4];
    size_t pl;
    const char *why = NULL;
    assert_int_equal(path_normalize("/abcd", 5, PATH_REFUSE, out, sizeof(out), &pl, &why), -1);
    assert_non_null(strstr(why, "no room"));
}

int main(void)
{
    struct CMUnitTest t[sizeof(cases) / sizeof(cases[0]) + 2];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        t[n++] = (struct CMUnitTest){ cases[i].name, run_case, NULL, NULL, (void *)&cases[i] };
    t[n++] = (struct CMUnitTest)cmocka_unit_test(test_too_long);
    t[n++] = (struct CMUnitTest)cmocka_unit_test(test_small_output_refused);
    return _cmocka_run_group_tests("pathnorm", t, n, NULL, NULL);
}
