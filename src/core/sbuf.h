/* sbuf.h: a growable, always NUL-terminated byte string. An allocation
 * failure is remembered (oom) and makes every later append a no-op, so a
 * builder checks once at the end. Start with struct sbuf b = { 0 }; free(b.p). */
#ifndef CORDON_SBUF_H
#define CORDON_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

void sb_add(struct sbuf *b, const char *s, size_t n);
void sb_str(struct sbuf *b, const char *s);

#endif
