/* socks5.h: SOCKS version 5 (RFC 1928), server side, CONNECT only.
 *
 * Owns: parsing the client's greeting and request. Pure functions, no I/O.
 * Only "no authentication required" (0x00) is offered: the listeners live in
 * the sandbox's private network namespace, so there is nobody else to keep
 * out. BIND and UDP ASSOCIATE are answered "command not supported".
 */
#ifndef CORDON_SOCKS5_H
#define CORDON_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reply codes (RFC 1928 section 6). */
enum {
    SOCKS5_OK = 0x00,
    SOCKS5_GENERAL_FAILURE = 0x01,
    SOCKS5_NOT_ALLOWED = 0x02,       /* "connection not allowed by ruleset" */
    SOCKS5_NET_UNREACHABLE = 0x03,
    SOCKS5_HOST_UNREACHABLE = 0x04,
    SOCKS5_CONN_REFUSED = 0x05,
    SOCKS5_TTL_EXPIRED = 0x06,
    SOCKS5_CMD_UNSUPPORTED = 0x07,
    SOCKS5_ATYP_UNSUPPORTED = 0x08,
};

enum { SOCKS5_ATYP_IPV4 = 1, SOCKS5_ATYP_DOMAIN = 3, SOCKS5_ATYP_IPV6 = 4 };
enum { SOCKS5_CMD_CONNECT = 1, SOCKS5_CMD_BIND = 2, SOCKS5_CMD_UDP = 3 };

/* Greeting: VER(5) NMETHODS METHODS... Returns its length when complete, 0
 * when more bytes are needed, -1 when malformed (wrong version, NMETHODS 0).
 * *no_auth is true when method 0x00 is offered. */
int socks5_parse_greeting(const uint8_t *buf, size_t len, bool *no_auth);

struct socks5_request {
    uint8_t cmd;
    uint8_t atyp;
    char host[256];  /* NUL-terminated: dotted IPv4, IPv6 text without brackets,
                        or the domain name as sent */
    uint16_t port;
};

/* Request: VER(5) CMD RSV(0) ATYP DST.ADDR DST.PORT. Returns its length when
 * complete, 0 when more bytes are needed, or the negated reply code to send
 * before closing (-SOCKS5_GENERAL_FAILURE for a malformed request,
 * -SOCKS5_CMD_UNSUPPORTED, -SOCKS5_ATYP_UNSUPPORTED). A domain of length 0,
 * or containing a control byte, space or DEL, is malformed (bytes >= 0x80
 * pass: the policy canonicalises them to A-labels or refuses). Port 0
 * is malformed. */
int socks5_parse_request(const uint8_t *buf, size_t len, struct socks5_request *req);

/* Write a reply (VER REP RSV ATYP BND.ADDR BND.PORT) with an IPv4 0.0.0.0:0
 * bound address into out (at least 10 bytes); returns its length. */
size_t socks5_reply(uint8_t *out, uint8_t rep);

#endif
