/* synth.h: the synthetic addresses cordon's in-sandbox DNS gives out, and
 * the names behind them.
 *
 * Owns: the per-run map name <-> address. A name the policy could allow gets
 * one index, for the run; the index is both an IPv4 address in 198.18.0.0/15
 * and an IPv6 address in SYNTH_V6_PREFIX::/96 (the IPv4 address in the low
 * 32 bits), so the A and AAAA answers of a name name the same thing:
 *  - 198.18.0.0/15 is the benchmarking range of RFC 2544 (IANA special
 *    registry: not globally reachable, never routed on the Internet), the
 *    range fake-address resolvers conventionally use; the sandbox's own
 *    network namespace holds it on lo, so it cannot collide with anything
 *    the host reaches (the proxy resolves real addresses on the host);
 *  - fd7a:6b8c:5d2e::/96 is a unique local prefix (RFC 4193: fd00::/8 with a
 *    40-bit global ID picked at random once, constant so that tests and
 *    users can recognise it), again only inside the sandbox.
 * 198.18.0.0 and 198.18.0.1 (lo's address in the sandbox) and 198.19.255.255
 * (the prefix's broadcast on lo) are never given out.
 *
 * When every index is taken (131069 names in one run, only possible through
 * a wildcard entry), the oldest is given to the new name: a program that
 * kept the old address now reaches nothing, never another host's name.
 */
#ifndef CORDON_SYNTH_H
#define CORDON_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYNTH_V4_BASE 0xc6120000u     /* 198.18.0.0 */
#define SYNTH_V4_PREFIXLEN 15
#define SYNTH_V6_PREFIXLEN 96
#define SYNTH_V4_LO 0xc6120001u       /* 198.18.0.1: lo's address in the sandbox */
#define SYNTH_V4_LO_TEXT "198.18.0.1"
#define SYNTH_V6_PREFIX_TEXT "fd7a:6b8c:5d2e::"
#define SYNTH_V6_LO_TEXT "fd7a:6b8c:5d2e::1"
#define SYNTH_FIRST 2u                /* offsets 0 and 1 are never given out */
#define SYNTH_COUNT ((1u << (32 - SYNTH_V4_PREFIXLEN)) - SYNTH_FIRST - 1u)

extern const uint8_t synth_v6_prefix[12];

struct synth_map;

struct synth_map *synth_map_new(void);
void synth_map_free(struct synth_map *m);

/* The index of name (canonical, as net_canon_host writes it), given one if
 * it has none. Returns 0, or -ENOMEM. */
int synth_lookup_name(struct synth_map *m, const char *name, uint32_t *index);

/* The addresses of an index (network byte order). */
void synth_addr4(uint32_t index, uint8_t out[4]);
void synth_addr6(uint32_t index, uint8_t out[16]);

/* Is this address (4 or 16 bytes, network order) in a synthetic range? */
bool synth_in_range(int family, const uint8_t *addr);

/* The name behind a synthetic address, or NULL when it is not one the map
 * gave out. The string lives until the index is given to another name. */
const char *synth_name_of(const struct synth_map *m, int family, const uint8_t *addr);

/* Names currently mapped (tests). */
size_t synth_map_size(const struct synth_map *m);

#endif
