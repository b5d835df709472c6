/* dnsmsg.h: the DNS messages of cordon's in-sandbox resolver.
 *
 * Owns: a strict parser for the queries the sandbox sends (RFC 1035 4.1,
 * EDNS(0) of RFC 6891) and the builder of the answers. Nothing here looks at
 * the policy; src/net/dns.c decides what to answer.
 *
 * A query is refused when it is in any way unusual, because every byte of it
 * comes from the sandbox (shared/DESIGN.md: untrusted input is parsed with
 * explicit size caps and rejected when ambiguous):
 *  - shorter than a header, or a response (QR set): not answered at all, so
 *    two resolvers can never answer each other in a loop;
 *  - an opcode other than QUERY: NOTIMP;
 *  - TC, Z or RCODE bits set, QDCOUNT other than 1, any answer or authority
 *    record, more than one additional record or one that is not an OPT
 *    pseudo-record with the root name, a compression pointer or a reserved
 *    label type in the question, a label longer than 63 or a name longer than
 *    255 bytes, EDNS options that do not exactly fill the OPT data, bytes
 *    after the last record, more than DNS_MAX_MSG bytes: FORMERR;
 *  - a class other than IN: REFUSED; an EDNS version other than 0: BADVERS.
 */
#ifndef CORDON_DNSMSG_H
#define CORDON_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_MAX_MSG 4096       /* larger queries are FORMERR */
#define DNS_HEADER_LEN 12
#define DNS_MAX_NAME_WIRE 255  /* RFC 1035 2.3.4, the root label included */
/* Presentation form: each wire byte at most "\DDD" */
#define DNS_NAME_TEXT_MAX (4 * DNS_MAX_NAME_WIRE + 1)
#define DNS_EDNS_PAYLOAD 1232  /* the UDP payload size cordon announces (DNS flag day 2020) */

enum {
    DNS_RCODE_NOERROR = 0,
    DNS_RCODE_FORMERR = 1,
    DNS_RCODE_SERVFAIL = 2,
    DNS_RCODE_NXDOMAIN = 3,
    DNS_RCODE_NOTIMP = 4,
    DNS_RCODE_REFUSED = 5,
    DNS_RCODE_BADVERS = 16, /* extended: needs EDNS in the answer */
};

enum {
    DNS_TYPE_A = 1,
    DNS_TYPE_NS = 2,
    DNS_TYPE_CNAME = 5,
    DNS_TYPE_SOA = 6,
    DNS_TYPE_NULL = 10,
    DNS_TYPE_PTR = 12,
    DNS_TYPE_MX = 15,
    DNS_TYPE_TXT = 16,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_SRV = 33,
    DNS_TYPE_OPT = 41,
    DNS_TYPE_SVCB = 64,
    DNS_TYPE_HTTPS = 65,
    DNS_TYPE_IXFR = 251,
    DNS_TYPE_AXFR = 252,
    DNS_TYPE_MAILB = 253,
    DNS_TYPE_MAILA = 254,
    DNS_TYPE_ANY = 255,
};

#define DNS_CLASS_IN 1

struct dns_query {
    uint16_t id;
    uint16_t flags;        /* the header's flags word, as sent */
    uint16_t qtype, qclass;
    /* The question's name in presentation form: lower case, labels joined
     * with ".", no trailing dot ("." for the root); a byte other than a
     * letter, digit, "-" or "_" is written "\DDD", except "\." and "\\". */
    char name[DNS_NAME_TEXT_MAX];
    /* Every label is letters, digits, "-" and "_" only: a candidate host
     * name (anything else is never one the policy could allow). */
    bool host_like;
    /* Offset just past the question (QNAME, QTYPE, QCLASS): the answer
     * repeats bytes 12..qend exactly as sent (RFC 1035 4.1.2; 0x20 case
     * randomisation needs the same case back). 0 when the question was not
     * read (an answer without a question section). */
    size_t qend;
    bool edns;             /* an OPT record came with it */
    uint16_t edns_size;
    uint8_t edns_version;
};

/* Parse a query of len bytes. Returns -1: do not answer; 0: a well-formed
 * query; or a positive RCODE to answer with (FORMERR, NOTIMP, REFUSED,
 * BADVERS). id and flags are always set when the result is not -1; the rest
 * as far as the query could be read. */
int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q);

/* A record of the answer section; its owner name is the question's (a
 * compression pointer to offset 12). */
struct dns_rr {
    uint16_t type;
    uint32_t ttl;
    uint16_t rdlen;
    const uint8_t *rdata;
};

/* The answer to query q (parsed from msg): the header (ID, RD and CD of the
 * query, QR and RA set, the opcode echoed), the question as sent when
 * q->qend is set, the records, and an OPT record when the query had one
 * (payload DNS_EDNS_PAYLOAD; carries the upper bits of rcode, so BADVERS
 * needs it). Returns the length, or 0 when it does not fit in cap, or when
 * rcode needs EDNS the query did not use. */
size_t dns_build_answer(const uint8_t *msg, const struct dns_query *q, int rcode,
                        const struct dns_rr *rrs, size_t nrr, uint8_t *out, size_t cap);

/* A name in presentation form as dns_parse_query writes it (no escapes
 * needed: letters, digits, "-", "_" and dots) in wire form. Returns the
 * length, or 0 when it is not such a name or does not fit. */
size_t dns_name_to_wire(const char *text, uint8_t *out, size_t cap);

/* The mnemonic of a type ("A", "TXT", "TYPE65535"); buf holds at least 10. */
const char *dns_type_name(uint16_t type, char *buf, size_t n);

#endif
