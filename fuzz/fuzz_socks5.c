/* fuzz_socks5.c: libFuzzer target for the SOCKS5 parsers (src/proxy/socks5.c).
 *
 * The input is parsed as a greeting, as a request, and as a greeting followed
 * by a request (the request parsed from the bytes after a complete greeting),
 * as a client sends them. Invariants, each an abort() when broken:
 *  - greeting: the result is -1, 0 or 2 + NMETHODS <= len; on success VER is
 *    5, NMETHODS > 0 and no_auth says whether 0x00 is among the methods;
 *  - request: the result is 0, -SOCKS5_GENERAL_FAILURE,
 *    -SOCKS5_CMD_UNSUPPORTED, -SOCKS5_ATYP_UNSUPPORTED or the request's
 *    length <= len; on success the command is CONNECT, the port is the
 *    big-endian DST.PORT and not 0, and the host is NUL-terminated, at most
 *    255 bytes, and is exactly the address sent: inet_pton of an IPv4 or
 *    IPv6 host gives back DST.ADDR, a domain is the bytes sent, none a
 *    control byte, space or DEL;
 *  - determinism: the same bytes give the same result; every prefix (from
 *    an exact-size copy, so ASan sees reads past it) gives 0 or the full
 *    result, checked one byte short and at a prefix chosen from the input;
 *  - socks5_reply writes exactly 10 bytes: 5, REP, 0, 1, then zeros.
 */
#include "fuzz.h"

#include "proxy/socks5.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_socks5: invariant broken: %s (%s:%d)\n", #cond,     \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static int greeting_copy(const uint8_t *p, size_t k, bool *no_auth)
{
    uint8_t *copy = malloc(k ? k : 1);
    if (!copy)
        abort();
    memcpy(copy, p, k);
    int r = socks5_parse_greeting(copy, k, no_auth);
    free(copy);
    return r;
}

static int check_greeting(const uint8_t *p, size_t len, size_t cut)
{
    bool no_auth = false;
    int r = socks5_parse_greeting(p, len, &no_auth);
    CHECK(r >= -1);
    if (r > 0) {
        CHECK(len >= 2 && p[0] == 5 && p[1] > 0);
        CHECK((size_t)r == 2u + p[1] && (size_t)r <= len);
        CHECK(no_auth == (memchr(p + 2, 0, p[1]) != NULL));
        bool na2 = !no_auth;
        CHECK(greeting_copy(p, (size_t)r, &na2) == r && na2 == no_auth);
        CHECK(greeting_copy(p, (size_t)r - 1, &na2) == 0);
    } else if (r == 0) {
        CHECK(len < 2 || len < 2u + p[1]);
    } else {
        CHECK(len >= 1 && (p[0] != 5 || (len >= 2 && p[1] == 0)));
    }
    bool na3 = false;
    CHECK(socks5_parse_greeting(p, len, &na3) == r && (r <= 0 || na3 == no_auth));
    int rc = greeting_copy(p, cut, &na3);
    if (r > 0 && cut >= (size_t)r)
        CHECK(rc == r);
    else
        CHECK(rc == 0 || rc == r);
    return r;
}

static bool same_req(int ra, const struct socks5_request *a, int rb,
                     const struct socks5_request *b)
{
    if (ra != rb)
        return false;
    if (ra <= 0)
        return true;
    return a->cmd == b->cmd && a->atyp == b->atyp && a->port == b->port &&
           strcmp(a->host, b->host) == 0;
}

static int request_copy(const uint8_t *p, size_t k, struct socks5_request *q)
{
    uint8_t *copy = malloc(k ? k : 1);
    if (!copy)
        abort();
    memcpy(copy, p, k);
    int r = socks5_parse_request(copy, k, q);
    free(copy);
    return r;
}

static void check_request(const uint8_t *p, size_t len, size_t cut)
{
    struct socks5_request q, q2;
    int r = socks5_parse_request(p, len, &q);
    if (r > 0) {
        CHECK((size_t)r <= len && r >= 8);
        CHECK(p[0] == 5 && p[1] == SOCKS5_CMD_CONNECT && p[2] == 0 && p[3] == q.atyp);
        CHECK(q.cmd == SOCKS5_CMD_CONNECT);
        CHECK(memchr(q.host, '\0', sizeof(q.host)) != NULL);
        size_t hl = strlen(q.host);
        CHECK(hl >= 1 && hl <= 255);
        CHECK(q.port != 0 && q.port == ((p[r - 2] << 8) | p[r - 1]));
        uint8_t addr[16];
        switch (q.atyp) {
        case SOCKS5_ATYP_IPV4:
            CHECK(r == 10);
            CHECK(inet_pton(AF_INET, q.host, addr) == 1 && memcmp(addr, p + 4, 4) == 0);
            break;
        case SOCKS5_ATYP_IPV6:
            CHECK(r == 22);
            CHECK(inet_pton(AF_INET6, q.host, addr) == 1 && memcmp(addr, p + 4, 16) == 0);
            break;
        case SOCKS5_ATYP_DOMAIN:
            CHECK((size_t)r == 7u + p[4] && hl == p[4]);
            CHECK(memcmp(q.host, p + 5, hl) == 0);
            for (size_t i = 0; i < hl; i++)
                CHECK((unsigned char)q.host[i] >= 0x21 && q.host[i] != 0x7f);
            break;
        default:
            CHECK(!"atyp");
        }
        CHECK(same_req(r, &q, request_copy(p, (size_t)r, &q2), &q2));
        CHECK(request_copy(p, (size_t)r - 1, &q2) == 0);
    } else {
        CHECK(r == 0 || r == -SOCKS5_GENERAL_FAILURE || r == -SOCKS5_CMD_UNSUPPORTED ||
              r == -SOCKS5_ATYP_UNSUPPORTED);
    }
    CHECK(same_req(r, &q, socks5_parse_request(p, len, &q2), &q2));
    int rc = request_copy(p, cut, &q2);
    if (r > 0 && cut >= (size_t)r)
        CHECK(same_req(r, &q, rc, &q2));
    else
        CHECK(rc == 0 || rc == r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut = size ? ((size_t)data[size - 1] * 257u + data[0]) % (size + 1) : 0;

    int g = check_greeting(data, size, cut);
    check_request(data, size, cut);
    if (g > 0) {
        size_t rest = size - (size_t)g;
        check_request(data + g, rest, rest ? cut % (rest + 1) : 0);
    }

    uint8_t out[12];
    memset(out, 0xee, sizeof(out));
    uint8_t rep = size ? data[0] : 0;
    CHECK(socks5_reply(out, rep) == 10);
    static const uint8_t tail[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };
    CHECK(out[0] == 5 && out[1] == rep && memcmp(out + 2, tail, 8) == 0);
    CHECK(out[10] == 0xee && out[11] == 0xee);
    return 0;
}
