/* sbuf.c: see sbuf.h. */
#include "sbuf.h"

#include <stdlib.h>
#include <string.h>

void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (!b->p || b->n + n + 1 > b->cap) { /* !p: said outright for the analyzer */
        size_t cap = (b->n + n + 1) * 2 + 256;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}
