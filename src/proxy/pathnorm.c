/* pathnorm.c: see pathnorm.h. Pure function: no allocation, no I/O. */
#include "pathnorm.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3986 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". */
static bool unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

#define REFUSE(msg)                                                                                \
    do {                                                                                           \
        *why = msg;                                                                                \
        return -1;                                                                                 \
    } while (0)

/* The query is kept as sent, but may not carry control bytes raw or encoded. */
static int check_query(const char *q, size_t n, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)q[i];
        if (c < 0x21 || c >= 0x7f || c == '#')
            REFUSE("a control byte, space or non-ASCII byte in the query");
        if (c == '%') {
            if (i + 2 >= n || hexval(q[i + 1]) < 0 || hexval(q[i + 2]) < 0)
                REFUSE("a malformed percent-escape in the query");
            int v = hexval(q[i + 1]) * 16 + hexval(q[i + 2]);
            if (v < 0x20 || v == 0x7f)
                REFUSE("an encoded control byte (or NUL) in the query");
            i += 2;
        }
    }
    return 0;
}

/* UTF-8 (RFC 3629) over the bytes that escapes spell: an overlong form
 * ("%C0%AE" for ".") or a stray byte has more than one reading, depending on
 * the server. need: continuation bytes still expected; lo/hi: the range of
 * the next one. */
struct utf8 {
    int need;
    unsigned char lo, hi;
};

static bool utf8_step(struct utf8 *u, int v)
{
    if (u->need > 0) {
        if (v < u->lo || v > u->hi)
            return false;
        u->need--;
        u->lo = 0x80;
        u->hi = 0xbf;
        return true;
    }
    u->lo = 0x80;
    u->hi = 0xbf;
    if (v < 0x80)
        return true;
    if (v >= 0xc2 && v <= 0xdf)
        u->need = 1;
    else if (v >= 0xe0 && v <= 0xef) {
        u->need = 2;
        if (v == 0xe0)
            u->lo = 0xa0; /* overlong */
        else if (v == 0xed)
            u->hi = 0x9f; /* surrogates */
    } else if (v >= 0xf0 && v <= 0xf4) {
        u->need = 3;
        if (v == 0xf0)
            u->lo = 0x90; /* overlong */
        else if (v == 0xf4)
            u->hi = 0x8f; /* above U+10FFFF */
    } else {
        return false; /* a stray continuation, C0, C1, F5-FF */
    }
    return true;
}

/* Decode the path: unreserved escapes become their character, other escapes
 * keep upper-case hex; refuse what could be read two ways. */
static long decode_path(const char *p, size_t n, char *dec, const char **why)
{
    static const char hex[] = "0123456789ABCDEF";
    struct utf8 u = { 0, 0x80, 0xbf };
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
                REFUSE("a malformed percent-escape in the path");
            int v = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
            if (!utf8_step(&u, v))
                REFUSE("percent-escapes that are not UTF-8 (an overlong or stray byte)");
            if (v == '/' || v == '\\')
                REFUSE("an encoded \"/\" or \"\\\" in the path");
            if (v == '.')
                REFUSE("an encoded \".\" in the path");
            if (v < 0x20 || v == 0x7f)
                REFUSE("an encoded control byte (or NUL) in the path");
            if (unreserved(v)) {
                dec[o++] = (char)v;
            } else {
                dec[o++] = '%';
                dec[o++] = hex[v >> 4];
                dec[o++] = hex[v & 15];
            }
            i += 2;
            continue;
        }
        if (u.need > 0)
            REFUSE("percent-escapes that are not UTF-8 (a sequence cut short)");
        if (c == '\\')
            REFUSE("a \"\\\" in the path");
        if (c < 0x21 || c >= 0x7f)
            REFUSE("a control byte, space or non-ASCII byte in the path");
        dec[o++] = (char)c;
    }
    if (u.need > 0)
        REFUSE("percent-escapes that are not UTF-8 (a sequence cut short)");
    return (long)o;
}

long path_normalize(const char *target, size_t len, enum path_mode mode, char *out,
                    size_t outsize, size_t *path_len, const char **why)
{
    if (len == 0 || target[0] != '/')
        REFUSE("the path must start with \"/\"");
    if (len > PATH_MAX_TARGET)
        REFUSE("the request target is too long");
    if (outsize < len + 1)
        REFUSE("no room for the normalised path");
    const char *qm = memchr(target, '?', len);
    size_t plen = qm ? (size_t)(qm - target) : len;
    size_t qlen = len - plen;
    if (qlen && check_query(target + plen, qlen, why) < 0)
        return -1;

    if (mode == PATH_AS_SPELLED) {
        char scratch[PATH_MAX_TARGET];
        if (decode_path(target, plen, scratch, why) < 0) /* validation only */
            return -1;
        memcpy(out, target, len);
        out[len] = '\0';
        *path_len = plen;
        return (long)len;
    }

    char dec[PATH_MAX_TARGET];
    long dl = decode_path(target, plen, dec, why);
    if (dl < 0)
        return -1;
    size_t dlen = (size_t)dl;

    /* RFC 3986 5.2.4, on segments. */
    struct seg {
        size_t off, len;
    } segs[PATH_MAX_TARGET / 2 + 1];
    size_t nseg = 0;
    bool trailing = false;
    size_t s = 1;
    for (;;) {
        size_t e = s;
        while (e < dlen && dec[e] != '/')
            e++;
        bool last = e >= dlen;
        size_t sl = e - s;
        if (sl == 0) {
            if (!last) {
                if (mode == PATH_REFUSE)
                    REFUSE("an empty path segment (\"//\")");
            } else {
                trailing = nseg > 0;
            }
        } else if (sl == 1 && dec[s] == '.') {
            trailing = last && nseg > 0;
        } else if (sl == 2 && dec[s] == '.' && dec[s + 1] == '.') {
            if (nseg == 0)
                REFUSE("\"..\" climbs above the root");
            nseg--;
            trailing = last && nseg > 0;
        } else {
            segs[nseg++] = (struct seg){ s, sl };
            trailing = false;
        }
        if (last)
            break;
        s = e + 1;
    }
    size_t o = 0;
    for (size_t k = 0; k < nseg; k++) {
        out[o++] = '/';
        memcpy(out + o, dec + segs[k].off, segs[k].len);
        o += segs[k].len;
    }
    if (o == 0 || trailing)
        out[o++] = '/';
    *path_len = o;
    if (o + qlen + 1 > outsize)
        REFUSE("no room for the normalised path");
    memcpy(out + o, target + plen, qlen);
    o += qlen;
    out[o] = '\0';
    return (long)o;
}
