/* synth.c: see synth.h.
 *
 * Names are kept in a chained hash table (FNV-1a) over an array indexed by
 * the address offset, so both directions are O(1). The arrays grow by
 * doubling up to SYNTH_COUNT; past that the oldest index is recycled (a
 * ring), its name unlinked first.
 */
#include "synth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 16384u
#define NONE UINT32_MAX

const uint8_t synth_v6_prefix[12] = { 0xfd, 0x7a, 0x6b, 0x8c, 0x5d, 0x2e, 0, 0, 0, 0, 0, 0 };

struct synth_map {
    uint32_t *buckets;  /* NBUCKETS heads */
    char **names;       /* by index */
    uint32_t *next;     /* chain links, by index */
    uint32_t n, cap;
    uint32_t ring;      /* next index to recycle once full */
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h & (NBUCKETS - 1);
}

struct synth_map *synth_map_new(void)
{
    struct synth_map *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->buckets = malloc(NBUCKETS * sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    for (uint32_t i = 0; i < NBUCKETS; i++)
        m->buckets[i] = NONE;
    return m;
}

void synth_map_free(struct synth_map *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n; i++)
        free(m->names[i]);
    free(m->names);
    free(m->next);
    free(m->buckets);
    free(m);
}

static void unlink_index(struct synth_map *m, uint32_t idx)
{
    uint32_t *pp = &m->buckets[hash(m->names[idx])];
    while (*pp != NONE) {
        if (*pp == idx) {
            *pp = m->next[idx];
            return;
        }
        pp = &m->next[*pp];
    }
}

int synth_lookup_name(struct synth_map *m, const char *name, uint32_t *index)
{
    uint32_t h = hash(name);
    for (uint32_t i = m->buckets[h]; i != NONE; i = m->next[i]) {
        if (strcmp(m->names[i], name) == 0) {
            *index = i;
            return 0;
        }
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    uint32_t idx;
    if (m->n < SYNTH_COUNT) {
        if (m->n == m->cap) {
            uint32_t nc = m->cap ? m->cap * 2 : 64;
            if (nc > SYNTH_COUNT)
                nc = SYNTH_COUNT;
            char **nn = realloc(m->names, nc * sizeof(*nn));
            if (!nn) {
                free(copy);
                return -ENOMEM;
            }
            m->names = nn;
            uint32_t *nx = realloc(m->next, nc * sizeof(*nx));
            if (!nx) {
                free(copy);
                return -ENOMEM;
            }
            m->next = nx;
            m->cap = nc;
        }
        idx = m->n++;
    } else {
        idx = m->ring;
        m->ring = (m->ring + 1) % SYNTH_COUNT;
        unlink_index(m, idx);
        free(m->names[idx]);
    }
    m->names[idx] = copy;
    m->next[idx] = m->buckets[h];
    m->buckets[h] = idx;
    *index = idx;
    return 0;
}

void synth_addr4(uint32_t index, uint8_t out[4])
{
    uint32_t a = SYNTH_V4_BASE + SYNTH_FIRST + index;
    out[0] = (uint8_t)(a >> 24);
    out[1] = (uint8_t)(a >> 16);
    out[2] = (uint8_t)(a >> 8);
    out[3] = (uint8_t)a;
}

void synth_addr6(uint32_t index, uint8_t out[16])
{
    memcpy(out, synth_v6_prefix, 12);
    synth_addr4(index, out + 12);
}

/* The offset of a synthetic address from 198.18.0.0, or NONE. */
static uint32_t offset_of(int family, const uint8_t *addr)
{
    const uint8_t *v4;
    if (family == 4)
        v4 = addr;
    else if (family == 6 && memcmp(addr, synth_v6_prefix, 12) == 0)
        v4 = addr + 12;
    else
        return NONE;
    uint32_t a = ((uint32_t)v4[0] << 24) | ((uint32_t)v4[1] << 16) | ((uint32_t)v4[2] << 8) | v4[3];
    if ((a >> (32 - SYNTH_V4_PREFIXLEN)) != (SYNTH_V4_BASE >> (32 - SYNTH_V4_PREFIXLEN)))
        return NONE;
    return a - SYNTH_V4_BASE;
}

bool synth_in_range(int family, const uint8_t *addr)
{
    return offset_of(family, addr) != NONE;
}

const char *synth_name_of(const struct synth_map *m, int family, const uint8_t *addr)
{
    uint32_t off = offset_of(family, addr);
    if (!m || off == NONE || off < SYNTH_FIRST || off - SYNTH_FIRST >= m->n)
        return NULL;
    return m->names[off - SYNTH_FIRST];
}

size_t synth_map_size(const struct synth_map *m)
{
    return m ? m->n : 0;
}
