/* socks5.c: SOCKS version 5 (RFC 1928) greeting and request parsing; see
 * socks5.h for the API.
 *
 * Owns: turning the sandbox's first SOCKS bytes into a method choice and a
 * CONNECT destination. Invariants: pure (no I/O, no allocation, no mutable
 * globals); a result depends only on the bytes needed to decide it, so for
 * any prefix P of B the result on P is 0 or the result on B; bytes after
 * the message are never read; on success the host is NUL-terminated text of
 * at most 255 bytes with no control byte, space or DEL (bytes >= 0x80 may
 * be UTF-8; the policy canonicalises or refuses them).
 *
 * The address type is reported as sent (T19 of egress-attacks.md): a client
 * that resolved the name itself sends ATYP 1 or 4, and the caller must not
 * treat that address as the name it came from.
 */
#include "proxy/socks5.h"

#include <arpa/inet.h>
#include <string.h>

int socks5_parse_greeting(const uint8_t *buf, size_t len, bool *no_auth)
{
    if (no_auth)
        *no_auth = false;
    if (!buf)
        return len ? -1 : 0;
    /* RFC 1928 3: VER NMETHODS METHODS, VER = 5, 1 <= NMETHODS <= 255. */
    if (len < 1)
        return 0;
    if (buf[0] != 5)
        return -1;
    if (len < 2)
        return 0;
    size_t n = buf[1];
    if (n == 0)
        return -1;
    if (len < 2 + n)
        return 0;
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (buf[2 + i] == 0x00)
            found = true;
    }
    if (no_auth)
        *no_auth = found;
    return (int)(2 + n);
}

int socks5_parse_request(const uint8_t *buf, size_t len, struct socks5_request *req)
{
    if (!req || (!buf && len))
        return -SOCKS5_GENERAL_FAILURE;
    req->cmd = 0;
    req->atyp = 0;
    req->host[0] = '\0';
    req->port = 0;

    /* RFC 1928 4: VER CMD RSV ATYP DST.ADDR DST.PORT. Each fixed byte is
     * judged as soon as it is present, in this order. */
    if (len < 1)
        return 0;
    if (buf[0] != 5)
        return -SOCKS5_GENERAL_FAILURE;
    if (len < 2)
        return 0;
    /* BIND, UDP ASSOCIATE and unknown commands: RFC 1928 6, X'07'. */
    if (buf[1] != SOCKS5_CMD_CONNECT)
        return -SOCKS5_CMD_UNSUPPORTED;
    if (len < 3)
        return 0;
    if (buf[2] != 0x00) /* RSV must be X'00' */
        return -SOCKS5_GENERAL_FAILURE;
    if (len < 4)
        return 0;
    uint8_t atyp = buf[3];
    size_t alen, off = 4;
    switch (atyp) {
    case SOCKS5_ATYP_IPV4:
        alen = 4;
        break;
    case SOCKS5_ATYP_IPV6:
        alen = 16;
        break;
    case SOCKS5_ATYP_DOMAIN:
        if (len < 5)
            return 0;
        alen = buf[4];
        off = 5;
        if (alen == 0)
            return -SOCKS5_GENERAL_FAILURE;
        break;
    default:
        return -SOCKS5_ATYP_UNSUPPORTED; /* RFC 1928 6, X'08' */
    }
    size_t total = off + alen + 2;
    if (len < total)
        return 0;

    const uint8_t *a = buf + off;
    uint16_t port = (uint16_t)((a[alen] << 8) | a[alen + 1]);
    if (port == 0)
        return -SOCKS5_GENERAL_FAILURE;

    if (atyp == SOCKS5_ATYP_DOMAIN) {
        /* RFC 1928 5: "a fully-qualified domain name", no terminating NUL.
         * No control byte, space or DEL: a NUL would cut the name short in
         * every C consumer, and controls end up in logs. Bytes >= 0x80 pass:
         * the policy converts the name to A-labels (UTS #46, T10) or refuses
         * it, before any matching. */
        for (size_t i = 0; i < alen; i++) {
            if (a[i] < 0x21 || a[i] == 0x7f)
                return -SOCKS5_GENERAL_FAILURE;
        }
        memcpy(req->host, a, alen);
        req->host[alen] = '\0';
    } else {
        int af = atyp == SOCKS5_ATYP_IPV4 ? AF_INET : AF_INET6;
        if (!inet_ntop(af, a, req->host, sizeof(req->host))) {
            req->host[0] = '\0';
            return -SOCKS5_GENERAL_FAILURE;
        }
    }
    req->cmd = buf[1];
    req->atyp = atyp;
    req->port = port;
    return (int)total;
}

size_t socks5_reply(uint8_t *out, uint8_t rep)
{
    /* RFC 1928 6: VER REP RSV ATYP BND.ADDR BND.PORT; the bound address is
     * not meaningful to a client of a proxy that dials for it, so it is
     * 0.0.0.0:0, as most servers send. */
    static const uint8_t tmpl[10] = { 5, 0, 0, SOCKS5_ATYP_IPV4, 0, 0, 0, 0, 0, 0 };
    memcpy(out, tmpl, sizeof(tmpl));
    out[1] = rep;
    return sizeof(tmpl);
}
