/* test_seccomp.c: unit tests for the filter table compiled at build time
 * (src/harden/seccomp_table.h, seccomp_gen).
 *
 * Every combination of options plan.c makes is in the table, equal
 * instruction for instruction to what libseccomp builds from the same code
 * now; harden_seccomp_build hands out exactly that; the flags that say how
 * to install it follow the options; and a combination outside the table is
 * still built (with libseccomp). What the filter refuses is tested against
 * the real binary in tests/escape/ and tests/integration/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "harden/harden.h"
#include "harden/seccomp_table.h"

static const struct seccomp_variant *variant(unsigned key)
{
    for (size_t i = 0; i < seccomp_table_n; i++)
        if (seccomp_table[i].key == key && seccomp_table[i].len)
            return &seccomp_table[i];
    return NULL;
}

/* Built and tested on one machine (./dev, CI): the table is for it. A
 * build tested elsewhere (another kernel, so another libseccomp API level)
 * builds its filters at run time, and the table cannot be compared. */
static bool table_fits(void)
{
    return seccomp_table_arch == seccomp_arch_native() && seccomp_table_api == seccomp_api_get();
}

static void test_every_combination_is_in_the_table_as_libseccomp_builds_it(void **state)
{
    (void)state;
    if (!table_fits()) {
        skip();
        return;
    }
    size_t valid = 0;
    for (unsigned key = 0; key < SECCOMP_OPTS_KEYS; key++) {
        struct seccomp_opts o;
        if (!seccomp_opts_from_key(key, &o))
            continue;
        valid++;
        assert_int_equal(seccomp_opts_key(&o), (int)key);
        struct seccomp_prog built, got;
        struct cordon_error err = { 0 };
        assert_int_equal(harden_seccomp_compile(&o, &built, &err), 0);
        const struct seccomp_variant *v = variant(key);
        if (!v) {
            fail_msg("options %u are not in the table", key);
            return;
        }
        assert_int_equal(v->len, built.len);
        assert_memory_equal(v->insns, built.insns, built.len * sizeof(*built.insns));
        assert_int_equal(harden_seccomp_build(&o, &got, &err), 0);
        assert_int_equal(got.len, built.len);
        assert_memory_equal(got.insns, built.insns, built.len * sizeof(*built.insns));
        assert_true(got.insns != v->insns); /* a copy: harden_seccomp_free frees it */
        assert_int_equal(got.notify, built.notify);
        assert_int_equal(got.wait_killable, built.wait_killable);
        assert_int_equal(got.notify, o.notify_denials || o.emulate_unix_connect);
        assert_int_equal(got.wait_killable, o.emulate_unix_connect);
        harden_seccomp_free(&built);
        harden_seccomp_free(&got);
    }
    /* nested x {all unix sockets, none, emulated connects (with notify)} x notify */
    assert_int_equal(valid, 10);
    assert_int_equal(seccomp_table_n, valid);
}

static void test_a_combination_outside_the_table_is_built(void **state)
{
    (void)state;
    /* refusals recorded, writes not observed: plan.c never asks for it */
    struct seccomp_opts o = { .notify_denials = true, .observe_writes = false };
    assert_int_equal(seccomp_opts_key(&o), -1);
    struct seccomp_prog p;
    struct cordon_error err = { 0 };
    assert_int_equal(harden_seccomp_build(&o, &p, &err), 0);
    assert_true(p.len > 0);
    assert_true(p.notify);
    for (size_t i = 0; i < seccomp_table_n; i++)
        assert_false(seccomp_table[i].len == p.len &&
                     memcmp(seccomp_table[i].insns, p.insns, p.len * sizeof(*p.insns)) == 0);
    harden_seccomp_free(&p);
}

/* The errno the supervisor answers for a refused ioctl (the filter itself
 * is tried against a real pty in tests/escape): the terminal ioctls that
 * outlive the run are refused, also with junk in the upper 32 bits (the
 * kernel truncates the command); ordinary terminal use is not. */
static void test_terminal_ioctls_refused(void **state)
{
    (void)state;
    struct seccomp_opts o = { 0 };
    static const unsigned long refused[] = {
        TIOCSTI, TIOCLINUX, TIOCSETD, TIOCEXCL, TIOCVHANGUP, TIOCCONS,
    };
    static const unsigned long allowed[] = {
        TCGETS, TCSETS, TCSETSW, TIOCGWINSZ, TIOCSWINSZ, TIOCGETD, TIOCNXCL, TIOCGPGRP, FIONREAD,
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        uint64_t a[6] = { 0, refused[i] };
        assert_int_equal(harden_seccomp_denial(&o, SYS_ioctl, a), EPERM);
        a[1] |= 1ULL << 32;
        assert_int_equal(harden_seccomp_denial(&o, SYS_ioctl, a), EPERM);
    }
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        uint64_t a[6] = { 0, allowed[i] };
        assert_int_equal(harden_seccomp_denial(&o, SYS_ioctl, a), 0);
    }
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_every_combination_is_in_the_table_as_libseccomp_builds_it),
        cmocka_unit_test(test_a_combination_outside_the_table_is_built),
        cmocka_unit_test(test_terminal_ioctls_refused),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
