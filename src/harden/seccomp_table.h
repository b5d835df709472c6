/* seccomp_table.h: the command's filter, compiled at build time.
 *
 * seccomp_gen (src/harden/seccomp_gen.c) runs harden_seccomp_compile() for
 * every combination of struct seccomp_opts that plan.c makes and writes the
 * BPF into seccomp_table.c, so that a run copies its filter instead of
 * building it with libseccomp (about 1.2 ms of CPU per run on bench's VM).
 * A variant is used only when this machine's native arch and libseccomp API
 * level are those it was generated with; otherwise the filter is built at
 * run time, as before. tests/unit/test_seccomp.c checks that every variant
 * equals what libseccomp builds now.
 */
#ifndef CORDON_SECCOMP_TABLE_H
#define CORDON_SECCOMP_TABLE_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

struct seccomp_variant {
    unsigned key;      /* seccomp_opts_key() of the options */
    const struct sock_filter *insns;
    unsigned short len;
};

extern const uint32_t seccomp_table_arch;  /* seccomp_arch_native() */
extern const unsigned seccomp_table_api;   /* seccomp_api_get() */
extern const struct seccomp_variant seccomp_table[];
extern const size_t seccomp_table_n;

#endif
