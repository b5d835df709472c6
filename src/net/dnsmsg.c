/* dnsmsg.c: see dnsmsg.h. */
#include "dnsmsg.h"

#include <stdio.h>
#include <string.h>

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static bool host_byte(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* The question's name at msg[*off]: uncompressed labels only (a question
 * has nothing earlier to point to, RFC 1035 4.1.4). */
static int parse_name(const uint8_t *msg, size_t len, size_t *off, struct dns_query *q)
{
    size_t o = *off, wire = 0, t = 0;
    bool host = true, first = true;
    for (;;) {
        if (o >= len)
            return -1;
        uint8_t l = msg[o++];
        wire++;
        if (l == 0)
            break;
        if (l > 63) /* 0xC0 pointer, 0x40 and 0x80 reserved (RFC 6891 5) */
            return -1;
        if (len - o < l || wire + l > DNS_MAX_NAME_WIRE - 1)
            return -1;
        if (!first)
            q->name[t++] = '.';
        first = false;
        for (size_t i = 0; i < l; i++) {
            uint8_t c = msg[o + i];
            if (c >= 'A' && c <= 'Z')
                c = (uint8_t)(c - 'A' + 'a');
            if (!host_byte(c))
                host = false;
            if (c == '.' || c == '\\') {
                q->name[t++] = '\\';
                q->name[t++] = (char)c;
            } else if (c > 0x20 && c < 0x7f) {
                q->name[t++] = (char)c;
            } else {
                t += (size_t)snprintf(q->name + t, 5, "\\%03u", c);
            }
        }
        o += l;
        wire += l;
    }
    if (first) {
        q->name[t++] = '.';
        host = false;
    }
    q->name[t] = '\0';
    q->host_like = host;
    *off = o;
    return 0;
}

/* The OPT pseudo-record (RFC 6891 6.1.2): root owner, type 41, options that
 * fill RDATA exactly. */
static int parse_opt(const uint8_t *msg, size_t len, size_t *off, struct dns_query *q)
{
    size_t o = *off;
    if (len - o < 11 || msg[o] != 0 || get16(msg + o + 1) != DNS_TYPE_OPT)
        return -1;
    q->edns = true;
    q->edns_size = get16(msg + o + 3);
    if (msg[o + 5] != 0) /* extended RCODE: only a responder sets it */
        return -1;
    q->edns_version = msg[o + 6];
    size_t rdlen = get16(msg + o + 9);
    o += 11;
    if (len - o < rdlen)
        return -1;
    size_t end = o + rdlen;
    while (o < end) {
        if (end - o < 4)
            return -1;
        size_t ol = get16(msg + o + 2);
        o += 4;
        if (end - o < ol)
            return -1;
        o += ol;
    }
    *off = o;
    return 0;
}

int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q)
{
    memset(q, 0, sizeof(*q));
    if (len < DNS_HEADER_LEN)
        return -1;
    q->id = get16(msg);
    q->flags = get16(msg + 2);
    if (q->flags & 0x8000)
        return -1;
    if (((q->flags >> 11) & 0xf) != 0)
        return DNS_RCODE_NOTIMP;
    /* TC, Z and RCODE are never set in a query (RFC 1035 4.1.1). */
    if (len > DNS_MAX_MSG || (q->flags & (0x0200 | 0x0040 | 0x000f)))
        return DNS_RCODE_FORMERR;
    uint16_t qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8), ar = get16(msg + 10);
    if (qd != 1 || an != 0 || ns != 0 || ar > 1)
        return DNS_RCODE_FORMERR;
    size_t off = DNS_HEADER_LEN;
    if (parse_name(msg, len, &off, q) < 0 || len - off < 4) {
        q->name[0] = '\0';
        q->host_like = false;
        return DNS_RCODE_FORMERR;
    }
    q->qtype = get16(msg + off);
    q->qclass = get16(msg + off + 2);
    off += 4;
    q->qend = off;
    if (ar == 1 && parse_opt(msg, len, &off, q) < 0) {
        q->edns = false;
        return DNS_RCODE_FORMERR;
    }
    if (off != len)
        return DNS_RCODE_FORMERR;
    if (q->edns && q->edns_version != 0)
        return DNS_RCODE_BADVERS;
    if (q->qclass != DNS_CLASS_IN)
        return DNS_RCODE_REFUSED;
    return 0;
}

size_t dns_build_answer(const uint8_t *msg, const struct dns_query *q, int rcode,
                        const struct dns_rr *rrs, size_t nrr, uint8_t *out, size_t cap)
{
    if (rcode < 0 || rcode > 0xfff || (rcode > 15 && !q->edns))
        return 0;
    size_t qlen = q->qend ? q->qend - DNS_HEADER_LEN : 0;
    size_t need = DNS_HEADER_LEN + qlen + (q->edns ? 11 : 0);
    for (size_t i = 0; i < nrr; i++)
        need += 12 + rrs[i].rdlen;
    if (need > cap || nrr > 0xffff || (nrr && !q->qend))
        return 0;
    put16(out, q->id);
    /* QR, the opcode as asked, RD and CD echoed (RFC 1035 4.1.1, RFC 4035
     * 3.2.2), RA: cordon answers every name itself. */
    uint16_t flags = (uint16_t)(0x8000 | (q->flags & 0x7800) | (q->flags & 0x0100) | 0x0080 |
                                (q->flags & 0x0010) | (rcode & 0xf));
    put16(out + 2, flags);
    put16(out + 4, q->qend ? 1 : 0);
    put16(out + 6, (uint16_t)nrr);
    put16(out + 8, 0);
    put16(out + 10, q->edns ? 1 : 0);
    size_t o = DNS_HEADER_LEN;
    memcpy(out + o, msg + DNS_HEADER_LEN, qlen);
    o += qlen;
    for (size_t i = 0; i < nrr; i++) {
        put16(out + o, 0xc000 | DNS_HEADER_LEN);
        put16(out + o + 2, rrs[i].type);
        put16(out + o + 4, DNS_CLASS_IN);
        put16(out + o + 6, (uint16_t)(rrs[i].ttl >> 16));
        put16(out + o + 8, (uint16_t)rrs[i].ttl);
        put16(out + o + 10, rrs[i].rdlen);
        o += 12;
        memcpy(out + o, rrs[i].rdata, rrs[i].rdlen);
        o += rrs[i].rdlen;
    }
    if (q->edns) {
        out[o] = 0;
        put16(out + o + 1, DNS_TYPE_OPT);
        put16(out + o + 3, DNS_EDNS_PAYLOAD);
        out[o + 5] = (uint8_t)(rcode >> 4); /* extended RCODE */
        out[o + 6] = 0;                     /* version */
        put16(out + o + 7, 0);              /* flags: DO clear, nothing is signed */
        put16(out + o + 9, 0);
        o += 11;
    }
    return o;
}

size_t dns_name_to_wire(const char *text, uint8_t *out, size_t cap)
{
    size_t o = 0;
    const char *p = text;
    if (!*p || strcmp(p, ".") == 0)
        return 0;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l == 0 || l > 63 || o + 1 + l + 1 > cap || o + 1 + l + 1 > DNS_MAX_NAME_WIRE)
            return 0;
        for (size_t i = 0; i < l; i++)
            if (!host_byte((uint8_t)p[i]))
                return 0;
        out[o++] = (uint8_t)l;
        memcpy(out + o, p, l);
        o += l;
        if (!dot)
            break;
        p = dot + 1;
    }
    out[o++] = 0;
    return o;
}

const char *dns_type_name(uint16_t type, char *buf, size_t n)
{
    static const struct {
        uint16_t t;
        const char *s;
    } names[] = {
        { DNS_TYPE_A, "A" },         { DNS_TYPE_NS, "NS" },       { DNS_TYPE_CNAME, "CNAME" },
        { DNS_TYPE_SOA, "SOA" },     { DNS_TYPE_NULL, "NULL" },   { DNS_TYPE_PTR, "PTR" },
        { DNS_TYPE_MX, "MX" },       { DNS_TYPE_TXT, "TXT" },     { DNS_TYPE_AAAA, "AAAA" },
        { DNS_TYPE_SRV, "SRV" },     { DNS_TYPE_SVCB, "SVCB" },   { DNS_TYPE_HTTPS, "HTTPS" },
        { DNS_TYPE_IXFR, "IXFR" },   { DNS_TYPE_AXFR, "AXFR" },   { DNS_TYPE_ANY, "ANY" },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].t == type)
            return names[i].s;
    snprintf(buf, n, "TYPE%u", (unsigned)type);
    return buf;
}
