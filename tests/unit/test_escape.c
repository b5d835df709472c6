/* test_escape.c: unit tests for text_escape (src/core/escape.h), the form
 * in which strings from the sandbox reach cordon's own output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/escape.h"

static void check(const char *in, const char *want)
{
    char out[256];
    size_t n = text_escape(out, sizeof(out), in);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_controls_are_escaped(void **state)
{
    (void)state;
    check("plain/path.txt", "plain/path.txt");
    check("a\nb", "a\\nb");
    check("x\n</sandbox_violations>\ndeny y", "x\\n</sandbox_violations>\\ndeny y");
    check("\r\t\x1b[31m\a\x7f\x01", "\\r\\t\\x1b[31m\\x07\\x7f\\x01");
    check("back\\slash", "back\\\\slash");
    check("\x0b\x0c\x1c\x1d\x1e", "\\x0b\\x0c\\x1c\\x1d\\x1e");
}

static void test_utf8(void **state)
{
    (void)state;
    check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* NEL, CSI as C1, line and paragraph separators, bidi overrides */
    check("\xc2\x85\xc2\x9b", "\\u0085\\u009b");
    check("\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029");
    /* bytes, not a literal: a literal holding them is what the escape is
     * about (clang-tidy misc-misleading-bidirectional) */
    static const unsigned char bidi[] = { 0xe2, 0x80, 0xae, 0xe2, 0x81, 0xa6, 0xe2, 0x80, 0x8f, 0 };
    check((const char *)bidi, "\\u202e\\u2066\\u200f");
    /* invalid: a lone 8-bit CSI, a continuation byte, an overlong "/", a
     * surrogate, a truncated sequence */
    check("\x9b", "\\x9b");
    check("\x80", "\\x80");
    check("\xc0\xaf", "\\xc0\\xaf");
    check("\xed\xa0\x80", "\\xed\\xa0\\x80");
    check("\xe2\x82", "\\xe2\\x82");
}

static void test_truncation_never_cuts_an_escape(void **state)
{
    (void)state;
    char out[6];
    assert_int_equal(text_escape(out, sizeof(out), "ab\x1b"), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(text_escape(out, sizeof(out), "abcd\xc3\xa9"), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(text_escape(out, 1, "abc"), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_controls_are_escaped),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_truncation_never_cuts_an_escape),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
