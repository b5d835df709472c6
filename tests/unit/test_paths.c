/* test_paths.c: unit tests for src/policy/paths.c.
 *
 * Covers lexical normalisation (cordon_path_normalize), `~` and relative
 * expansion (cordon_path_expand) and the ancestor test (cordon_path_is_prefix).
 * The invariant under test (policy.h): every output path is absolute, starts
 * with "/", has no "//", "." or ".." component and no trailing "/" except "/"
 * itself. Symlinks are never resolved here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cordon.h"
#include "policy/policy.h"

/* True when path satisfies the policy.h invariant. */
static bool is_clean_abs(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || p[0] != '/')
        return false;
    if (n > 1 && p[n - 1] == '/')
        return false;
    if (strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../"))
        return false;
    /* A final "/." or "/.." component. */
    if ((n >= 2 && strcmp(p + n - 2, "/.") == 0) || (n >= 3 && strcmp(p + n - 3, "/..") == 0))
        return false;
    return true;
}

/* ---- cordon_path_normalize ------------------------------------------------ */

struct norm_case {
    const char *in;
    const char *want;
};

static const struct norm_case norm_cases[] = {
    { "/", "/" },
    { "//", "/" },
    { "///", "/" },
    { "/.", "/" },
    { "/./", "/" },
    { "/./././", "/" },
    { "/..", "/" },
    { "/../", "/" },
    { "/../..", "/" },
    { "/../../../../../..", "/" },
    { "/./../.", "/" },
    { "/a", "/a" },
    { "/a/", "/a" },
    { "/a//", "/a" },
    { "//a", "/a" },        /* POSIX leaves a leading "//" to the system; Linux means "/" */
    { "///a///b///", "/a/b" },
    { "/a//b", "/a/b" },
    { "/a/./b", "/a/b" },
    { "/a/./b/../c", "/a/c" },
    { "/a/b/..", "/a" },
    { "/a/b/../", "/a" },
    { "/a/..", "/" },
    { "/a/b/../..", "/" },
    { "/a/b/../../..", "/" },
    { "/a/../../b", "/b" },
    { "/../a", "/a" },
    { "/../../a/b", "/a/b" },
    { "/a/b/c/../../d", "/a/d" },
    { "/a/b/c/./../../d/./e/..", "/a/d" },
    { "/a/b/./././", "/a/b" },
    /* Names that only look like dot components are ordinary names. */
    { "/.a", "/.a" },
    { "/..a", "/..a" },
    { "/a.", "/a." },
    { "/a..", "/a.." },
    { "/...", "/..." },
    { "/.../", "/..." },
    { "/a/..b/", "/a/..b" },
    { "/a/.b/..", "/a" },
    { "/a/b./..", "/a" },
    { "/.hidden/./x", "/.hidden/x" },
    /* Other bytes pass through untouched. */
    { "/ /x", "/ /x" },
    { "/a b/ c /", "/a b/ c " },
    { "/a\\b/..", "/" },
    { "/~", "/~" },
    { "/a/~/..", "/a" },
    { "/*/?/[x]", "/*/?/[x]" },
    { "/\xc3\xa9t\xc3\xa9/./x", "/\xc3\xa9t\xc3\xa9/x" },
    { "/a/b/c", "/a/b/c" },
    { "/usr/lib/../lib64/./libc.so", "/usr/lib64/libc.so" },
};

static void test_normalize_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
        char *buf = strdup(norm_cases[i].in);
        assert_non_null(buf);
        cordon_path_normalize(buf);
        if (strcmp(buf, norm_cases[i].want) != 0)
            print_error("normalize(\"%s\") = \"%s\", want \"%s\"\n", norm_cases[i].in, buf,
                        norm_cases[i].want);
        assert_string_equal(buf, norm_cases[i].want);
        assert_true(is_clean_abs(buf));
        free(buf);
    }
}

static void test_normalize_idempotent(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
        char *once = strdup(norm_cases[i].in);
        assert_non_null(once);
        cordon_path_normalize(once);
        char *twice = strdup(once);
        assert_non_null(twice);
        cordon_path_normalize(twice);
        assert_string_equal(once, twice);
        free(once);
        free(twice);
    }
}

/* In place: the result never needs more room than the input (checked under
 * ASan by allocating exactly strlen + 1 bytes). */
static void test_normalize_exact_allocation(void **state)
{
    (void)state;
    static const char *const ins[] = { "/", "//", "/.", "/..", "/a", "//a", "/a/", "/./a/.." };
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        size_t n = strlen(ins[i]) + 1;
        char *buf = malloc(n);
        assert_non_null(buf);
        memcpy(buf, ins[i], n);
        cordon_path_normalize(buf);
        assert_true(is_clean_abs(buf));
        assert_true(strlen(buf) < n);
        free(buf);
    }
}

/* Long paths: many components, many ".." that climb back to "/". */
static void test_normalize_long(void **state)
{
    (void)state;
    enum { N = 5000 };
    size_t cap = N * 4 + N * 3 + 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    char *w = buf;
    for (int i = 0; i < N; i++) {
        memcpy(w, "/ab", 3);
        w += 3;
    }
    for (int i = 0; i < N; i++) {
        memcpy(w, "/..", 3);
        w += 3;
    }
    memcpy(w, "/z/", 4);
    cordon_path_normalize(buf);
    assert_string_equal(buf, "/z");

    /* Climb past the root N times: still "/". */
    w = buf;
    for (int i = 0; i < N; i++) {
        memcpy(w, "/..", 3);
        w += 3;
    }
    *w = '\0';
    cordon_path_normalize(buf);
    assert_string_equal(buf, "/");

    /* A long name survives untouched. */
    memset(buf, 'x', cap - 1);
    buf[0] = '/';
    buf[cap - 1] = '\0';
    size_t len = strlen(buf);
    cordon_path_normalize(buf);
    assert_int_equal(strlen(buf), len);
    free(buf);
}

/* ---- cordon_path_expand --------------------------------------------------- */

struct expand_case {
    const char *in, *home, *cwd;
    const char *want;
};

static const struct expand_case expand_cases[] = {
    { "~", "/home/u", "/work/p", "/home/u" },
    { "~/", "/home/u", "/work/p", "/home/u" },
    { "~/x", "/home/u", "/work/p", "/home/u/x" },
    { "~/x/", "/home/u", "/work/p", "/home/u/x" },
    { "~//x", "/home/u", "/work/p", "/home/u/x" },
    { "~/.ssh", "/home/u", "/work/p", "/home/u/.ssh" },
    { "~/./a/../b", "/home/u", "/work/p", "/home/u/b" },
    { "~/..", "/home/u", "/work/p", "/home" },
    { "~/../../../..", "/home/u", "/work/p", "/" },
    { "~", "/home/u/", "/work/p", "/home/u" },
    { "~/x", "/home//u/./", "/work/p", "/home/u/x" },
    { "~", "/", "/work/p", "/" },
    { "~/x", "/", "/work/p", "/x" },
    { "~/x", "/home/u", NULL, "/home/u/x" },  /* cwd not needed */
    { ".", "/home/u", "/work/p", "/work/p" },
    { "./", "/home/u", "/work/p", "/work/p" },
    { "..", "/home/u", "/work/p", "/work" },
    { "../..", "/home/u", "/work/p", "/" },
    { "../../../x", "/home/u", "/work/p", "/x" },
    { "src", "/home/u", "/work/p", "/work/p/src" },
    { "src/", "/home/u", "/work/p", "/work/p/src" },
    { "src/../lib", "/home/u", "/work/p", "/work/p/lib" },
    { "a/./b//c", "/home/u", "/work/p", "/work/p/a/b/c" },
    { ".ssh", "/home/u", "/work/p", "/work/p/.ssh" },
    { "x~", "/home/u", "/work/p", "/work/p/x~" },        /* ~ only counts first */
    { "./~", "/home/u", "/work/p", "/work/p/~" },        /* a file named "~" */
    { "./~bob", "/home/u", "/work/p", "/work/p/~bob" },
    { "src", "/home/u", "/", "/src" },
    { "src", "/home/u", "/work/p/", "/work/p/src" },
    { "/abs", "/home/u", "/work/p", "/abs" },
    { "/abs/./x/..", "/home/u", "/work/p", "/abs" },
    { "/", "/home/u", "/work/p", "/" },
    { "//", "/home/u", "/work/p", "/" },
    { "/~", "/home/u", "/work/p", "/~" },
    { "/abs", NULL, NULL, "/abs" },  /* neither home nor cwd needed */
    { "/a/*", NULL, NULL, "/a/*" },  /* globs are the caller's business */
};

static void test_expand_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
        const struct expand_case *c = &expand_cases[i];
        struct cordon_error err;
        memset(&err, 0x5a, sizeof(err));
        struct cordon_error untouched = err;
        char *out = cordon_path_expand(c->in, c->home, c->cwd, &err);
        if (!out || strcmp(out, c->want) != 0)
            print_error("expand(\"%s\", home=%s, cwd=%s) = %s, want \"%s\"\n", c->in,
                        c->home ? c->home : "NULL", c->cwd ? c->cwd : "NULL",
                        out ? out : "NULL", c->want);
        assert_non_null(out);
        assert_string_equal(out, c->want);
        assert_true(is_clean_abs(out));
        /* Success never touches err. */
        assert_memory_equal(&err, &untouched, sizeof(err));
        free(out);
    }
}

struct expand_err_case {
    const char *in, *home, *cwd;
    const char *const substr[3];  /* each must appear in the message */
};

static const struct expand_err_case expand_err_cases[] = {
    { "", "/home/u", "/work/p", { "empty path", NULL, NULL } },
    { "~user", "/home/u", "/work/p", { "\"~user\"", "~user", NULL } },
    { "~user/x", "/home/u", "/work/p", { "\"~user/x\"", "~user", NULL } },
    { "~root", "/home/u", "/work/p", { "\"~root\"", "~user", NULL } },
    { "~~", "/home/u", "/work/p", { "\"~~\"", NULL, NULL } },
    { "~.", "/home/u", "/work/p", { "\"~.\"", NULL, NULL } },
    { "~", NULL, "/work/p", { "\"~\"", "home directory is unknown", NULL } },
    { "~/x", NULL, "/work/p", { "\"~/x\"", "home directory is unknown", NULL } },
    { "~/x", "", "/work/p", { "home directory is unknown", NULL, NULL } },
    { "~/x", "home/u", "/work/p", { "home directory is unknown", NULL, NULL } },
    { "rel", "/home/u", NULL, { "\"rel\"", "working directory is unknown", NULL } },
    { ".", "/home/u", NULL, { "working directory is unknown", NULL, NULL } },
    { "rel", "/home/u", "", { "working directory is unknown", NULL, NULL } },
    { "rel", "/home/u", "work/p", { "working directory is unknown", NULL, NULL } },
};

static void test_expand_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(expand_err_cases) / sizeof(expand_err_cases[0]); i++) {
        const struct expand_err_case *c = &expand_err_cases[i];
        struct cordon_error err = { 0 };
        char *out = cordon_path_expand(c->in, c->home, c->cwd, &err);
        if (out)
            print_error("expand(\"%s\") should fail, got \"%s\"\n", c->in, out);
        assert_null(out);
        assert_int_equal(err.code, EINVAL);
        assert_non_null(memchr(err.msg, '\0', sizeof(err.msg)));
        for (size_t k = 0; k < 3 && c->substr[k]; k++) {
            if (!strstr(err.msg, c->substr[k]))
                print_error("expand(\"%s\"): message \"%s\" lacks \"%s\"\n", c->in, err.msg,
                            c->substr[k]);
            assert_non_null(strstr(err.msg, c->substr[k]));
        }
    }
}

static void test_expand_null_input(void **state)
{
    (void)state;
    struct cordon_error err = { 0 };
    assert_null(cordon_path_expand(NULL, "/home/u", "/work/p", &err));
    assert_int_equal(err.code, EINVAL);
    assert_non_null(strstr(err.msg, "empty path"));
}

/* A NULL err is allowed (cordon_err_set tolerates it). */
static void test_expand_null_err(void **state)
{
    (void)state;
    assert_null(cordon_path_expand("~bob", "/home/u", "/work/p", NULL));
    char *out = cordon_path_expand("~/x", "/home/u", "/work/p", NULL);
    assert_non_null(out);
    assert_string_equal(out, "/home/u/x");
    free(out);
}

/* ---- cordon_path_is_prefix ------------------------------------------------ */

struct prefix_case {
    const char *a, *b;
    bool want;
};

static const struct prefix_case prefix_cases[] = {
    { "/a", "/a", true },
    { "/a", "/a/b", true },
    { "/a", "/a/b/c/d", true },
    { "/a/b", "/a/b/c/d", true },
    { "/a", "/ab", false },
    { "/a", "/a.b", false },
    { "/a", "/a-b", false },   /* '-' sorts before '/' */
    { "/a", "/a0", false },
    { "/ab", "/a", false },
    { "/a/b", "/a", false },
    { "/a/b", "/a/bc", false },
    { "/a/b", "/a/bc/d", false },
    { "/a", "/b", false },
    { "/a/b", "/a/c/b", false },
    { "/a.", "/a./x", true },
    { "/home/u/.ssh", "/home/u/.ssh/id_ed25519", true },
    { "/home/u/.ssh", "/home/u/.sshx", false },
    { "/", "/", true },
    { "/", "/a", true },
    { "/", "/a/b/c", true },
    { "/", "/.hidden", true },
    { "/a", "/", false },
    { "/a/b/c", "/a/b", false },
};

static void test_is_prefix_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(prefix_cases) / sizeof(prefix_cases[0]); i++) {
        const struct prefix_case *c = &prefix_cases[i];
        bool got = cordon_path_is_prefix(c->a, c->b);
        if (got != c->want)
            print_error("is_prefix(\"%s\", \"%s\") = %d, want %d\n", c->a, c->b, got, c->want);
        assert_int_equal(got, c->want);
    }
}

/* Equal paths are prefixes of each other; distinct ones are not both. */
static void test_is_prefix_antisymmetric(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(prefix_cases) / sizeof(prefix_cases[0]); i++) {
        const struct prefix_case *c = &prefix_cases[i];
        bool ab = cordon_path_is_prefix(c->a, c->b);
        bool ba = cordon_path_is_prefix(c->b, c->a);
        if (strcmp(c->a, c->b) == 0)
            assert_true(ab && ba);
        else
            assert_false(ab && ba);
    }
}

/* Expansion and the prefix test together: what a deny on "~/.ssh" covers. */
static void test_expand_then_prefix(void **state)
{
    (void)state;
    char *deny = cordon_path_expand("~/.ssh/", "/home/u", "/work/p", NULL);
    char *key = cordon_path_expand("~/./.ssh/keys/../id_rsa", "/home/u", "/work/p", NULL);
    char *other = cordon_path_expand("~/.ssh2/id_rsa", "/home/u", "/work/p", NULL);
    assert_non_null(deny);
    assert_non_null(key);
    assert_non_null(other);
    assert_true(cordon_path_is_prefix(deny, key));
    assert_false(cordon_path_is_prefix(deny, other));
    free(deny);
    free(key);
    free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_normalize_idempotent),
        cmocka_unit_test(test_normalize_exact_allocation),
        cmocka_unit_test(test_normalize_long),
        cmocka_unit_test(test_expand_table),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_expand_null_input),
        cmocka_unit_test(test_expand_null_err),
        cmocka_unit_test(test_is_prefix_table),
        cmocka_unit_test(test_is_prefix_antisymmetric),
        cmocka_unit_test(test_expand_then_prefix),
    };
    return cmocka_run_group_tests_name("paths", tests, NULL, NULL);
}
