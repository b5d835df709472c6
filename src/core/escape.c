/* escape.c: see escape.h. */
#include "escape.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (2-4), with its code point in
 * *cp, or 0 when it is not one (overlong, surrogate, beyond U+10FFFF,
 * truncated). */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
    size_t n;
    uint32_t c, min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        c = s[0] & 0x1f;
        min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        c = s[0] & 0x0f;
        min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        c = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

static bool escaped_code_point(uint32_t c)
{
    return (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029 || c == 0x200e ||
           c == 0x200f || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

size_t text_escape(char *dst, size_t cap, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    while (*s) {
        char tmp[8];
        const char *piece = tmp;
        size_t len, adv = 1;
        uint32_t cp = 0;
        if (*s == '\\') {
            piece = "\\\\";
            len = 2;
        } else if (*s == '\n' || *s == '\r' || *s == '\t') {
            piece = *s == '\n' ? "\\n" : *s == '\r' ? "\\r" : "\\t";
            len = 2;
        } else if (*s < 0x20 || *s == 0x7f) {
            len = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", *s);
        } else if (*s < 0x80) {
            piece = (const char *)s;
            len = 1;
        } else if ((adv = utf8_seq(s, &cp)) == 0) {
            adv = 1;
            len = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", *s);
        } else if (escaped_code_point(cp)) {
            len = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned)cp);
        } else {
            piece = (const char *)s;
            len = adv;
        }
        if (o + len + 1 > cap)
            break;
        memcpy(dst + o, piece, len);
        o += len;
        s += adv;
    }
    dst[o] = '\0';
    return o;
}
