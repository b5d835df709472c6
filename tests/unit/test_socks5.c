/* test_socks5.c: unit tests for src/proxy/socks5.c (API in src/proxy/socks5.h).
 *
 * Pinned down: the greeting (version, NMETHODS 0, whether "no
 * authentication" is offered), the request (version, command, reserved
 * byte, address types, domain rules, port 0) with the exact negated reply
 * code of each refusal; that every prefix of a valid message needs more and
 * bytes after it are not read; the text form of IPv4 and IPv6 addresses; the
 * reply bytes. T19 of shared/reference/egress-attacks.md: a destination sent
 * as an address (ATYP 1 or 4) is reported as such, never as a name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/socks5.h"

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

/* ---- greeting ------------------------------------------------------------------ */

struct gcase {
    const char *name;
    const uint8_t *raw;
    size_t len;
    int want;
    bool no_auth;
};
#define G(name, raw, want, no_auth) { name, B(raw), want, no_auth }

static const struct gcase greeting_cases[] = {
    G("no-auth only", "\x05\x01\x00", 3, true),
    G("no-auth among others", "\x05\x03\x02\x00\x01", 5, true),
    G("user/pass only", "\x05\x01\x02", 3, false),
    G("GSSAPI and user/pass", "\x05\x02\x01\x02", 4, false),
    G("trailing bytes not read", "\x05\x01\x00\x05\x01\x00\x01", 3, true),
    G("empty", "", 0, false),
    G("version only", "\x05", 0, false),
    G("methods missing", "\x05\x02\x00", 0, false),
    G("NMETHODS 0", "\x05\x00", -1, false),
    G("SOCKS4", "\x04\x01\x00\x50", -1, false),
    G("HTTP instead", "GET / HTTP/1.1\r\n", -1, false),
    G("wrong version before more bytes", "\x06", -1, false),
};

static void test_greeting(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(greeting_cases) / sizeof(greeting_cases[0]); i++) {
        const struct gcase *c = &greeting_cases[i];
        bool no_auth = !c->no_auth;
        int r = socks5_parse_greeting(c->raw, c->len, &no_auth);
        if (r != c->want || (r > 0 && no_auth != c->no_auth))
            print_error("greeting \"%s\": got %d no_auth %d\n", c->name, r, (int)no_auth);
        assert_int_equal(r, c->want);
        if (r > 0)
            assert_int_equal(no_auth, c->no_auth);
    }
}

static void test_greeting_255_methods(void **state)
{
    (void)state;
    uint8_t buf[257];
    buf[0] = 5;
    buf[1] = 255;
    for (int i = 0; i < 255; i++)
        buf[2 + i] = (uint8_t)(i + 1); /* 1..255: no 0x00 */
    bool no_auth = true;
    assert_int_equal(socks5_parse_greeting(buf, sizeof(buf), &no_auth), 257);
    assert_false(no_auth);
    buf[256] = 0;
    assert_int_equal(socks5_parse_greeting(buf, sizeof(buf), &no_auth), 257);
    assert_true(no_auth);
    for (size_t n = 0; n < sizeof(buf); n++)
        assert_int_equal(socks5_parse_greeting(buf, n, &no_auth), 0);
}

/* ---- request -------------------------------------------------------------------- */

struct rcase {
    const char *name;
    const uint8_t *raw;
    size_t len;
    int want;
    uint8_t atyp;
    const char *host;
    uint16_t port;
};
#define R(name, raw, want, atyp, host, port) { name, B(raw), want, atyp, host, port }
#define E(name, raw, want) { name, B(raw), want, 0, NULL, 0 }

static const struct rcase request_cases[] = {
    R("IPv4", "\x05\x01\x00\x01\xc0\x00\x02\x01\x01\xbb", 10, SOCKS5_ATYP_IPV4, "192.0.2.1", 443),
    R("IPv4 zeros", "\x05\x01\x00\x01\x00\x00\x00\x00\x00\x50", 10, SOCKS5_ATYP_IPV4, "0.0.0.0", 80),
    R("IPv4 port 65535", "\x05\x01\x00\x01\x7f\x00\x00\x01\xff\xff", 10, SOCKS5_ATYP_IPV4, "127.0.0.1", 65535),
    R("IPv6", "\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x50",
      22, SOCKS5_ATYP_IPV6, "2001:db8::1", 80),
    R("IPv6 v4-mapped", "\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xa9\xfe\xa9\xfe\x00\x50",
      22, SOCKS5_ATYP_IPV6, "::ffff:169.254.169.254", 80),
    R("domain", "\x05\x01\x00\x03\x0c" "allowed.test" "\x01\xbb", 19, SOCKS5_ATYP_DOMAIN, "allowed.test", 443),
    R("domain one byte", "\x05\x01\x00\x03\x01" "x" "\x00\x01", 8, SOCKS5_ATYP_DOMAIN, "x", 1),
    R("domain printable punctuation", "\x05\x01\x00\x03\x05" "!~a_." "\x00\x50", 12, SOCKS5_ATYP_DOMAIN, "!~a_.", 80),
    R("domain UTF-8 passes (the policy maps it)", "\x05\x01\x00\x03\x07" "\xd0\xb0llow." "\x01\xbb", 14, SOCKS5_ATYP_DOMAIN, "\xd0\xb0llow.", 443),
    R("trailing bytes not read", "\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x16" "SSH-2.0", 10, SOCKS5_ATYP_IPV4, "10.0.0.1", 22),

    E("empty", "", 0),
    E("version only", "\x05", 0),
    E("header only", "\x05\x01\x00\x01", 0),
    E("IPv4 short", "\x05\x01\x00\x01\xc0\x00\x02\x01\x01", 0),
    E("domain length only", "\x05\x01\x00\x03\x0c", 0),
    E("domain short", "\x05\x01\x00\x03\x0c" "allowed.test" "\x01", 0),
    E("IPv6 short", "\x05\x01\x00\x04\x20\x01", 0),

    E("SOCKS4", "\x04\x01\x00\x50\x7f\x00\x00\x01\x00", -SOCKS5_GENERAL_FAILURE),
    E("BIND", "\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50", -SOCKS5_CMD_UNSUPPORTED),
    E("UDP ASSOCIATE", "\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00", -SOCKS5_CMD_UNSUPPORTED),
    E("command 0", "\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50", -SOCKS5_CMD_UNSUPPORTED),
    E("command 0xff", "\x05\xff\x00\x01\x7f\x00\x00\x01\x00\x50", -SOCKS5_CMD_UNSUPPORTED),
    E("BIND decided on two bytes", "\x05\x02", -SOCKS5_CMD_UNSUPPORTED),
    E("reserved byte not 0", "\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x50", -SOCKS5_GENERAL_FAILURE),
    E("ATYP 0", "\x05\x01\x00\x00\x7f\x00\x00\x01\x00\x50", -SOCKS5_ATYP_UNSUPPORTED),
    E("ATYP 2", "\x05\x01\x00\x02\x7f\x00\x00\x01\x00\x50", -SOCKS5_ATYP_UNSUPPORTED),
    E("ATYP 5", "\x05\x01\x00\x05", -SOCKS5_ATYP_UNSUPPORTED),
    E("domain length 0", "\x05\x01\x00\x03\x00\x01\xbb", -SOCKS5_GENERAL_FAILURE),
    E("domain with NUL", "\x05\x01\x00\x03\x05" "a\0b.c" "\x01\xbb", -SOCKS5_GENERAL_FAILURE),
    E("domain NUL-terminated", "\x05\x01\x00\x03\x05" "a.tt\0" "\x01\xbb", -SOCKS5_GENERAL_FAILURE),
    E("domain with space", "\x05\x01\x00\x03\x05" "a b.c" "\x01\xbb", -SOCKS5_GENERAL_FAILURE),
    E("domain with control", "\x05\x01\x00\x03\x05" "a\nb.c" "\x01\xbb", -SOCKS5_GENERAL_FAILURE),
    E("domain with DEL", "\x05\x01\x00\x03\x05" "ab.c\x7f" "\x01\xbb", -SOCKS5_GENERAL_FAILURE),
    E("domain with DEL", "\x05\x01\x00\x03\x05" "al\x7fow" "\x01\xbb", -SOCKS5_GENERAL_FAILURE),
    E("IPv4 port 0", "\x05\x01\x00\x01\xc0\x00\x02\x01\x00\x00", -SOCKS5_GENERAL_FAILURE),
    E("domain port 0", "\x05\x01\x00\x03\x01" "x" "\x00\x00", -SOCKS5_GENERAL_FAILURE),
    E("IPv6 port 0", "\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00",
      -SOCKS5_GENERAL_FAILURE),
};

static void test_request(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(request_cases) / sizeof(request_cases[0]); i++) {
        const struct rcase *c = &request_cases[i];
        struct socks5_request req;
        memset(&req, 0xaa, sizeof(req));
        int r = socks5_parse_request(c->raw, c->len, &req);
        if (r != c->want)
            print_error("request \"%s\": got %d, want %d\n", c->name, r, c->want);
        assert_int_equal(r, c->want);
        if (r > 0) {
            assert_int_equal(req.cmd, SOCKS5_CMD_CONNECT);
            assert_int_equal(req.atyp, c->atyp);
            assert_string_equal(req.host, c->host);
            assert_int_equal(req.port, c->port);
        }
    }
}

/* Every proper prefix of a valid request needs more bytes; a copy of exactly
 * that size lets ASan catch a read past it. */
static void test_request_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(request_cases) / sizeof(request_cases[0]); i++) {
        const struct rcase *c = &request_cases[i];
        if (c->want <= 0)
            continue;
        for (size_t n = 0; n < (size_t)c->want; n++) {
            uint8_t *p = malloc(n ? n : 1);
            assert_non_null(p);
            memcpy(p, c->raw, n);
            struct socks5_request req;
            assert_int_equal(socks5_parse_request(p, n, &req), 0);
            free(p);
        }
    }
}

static void test_domain_255(void **state)
{
    (void)state;
    uint8_t buf[5 + 255 + 2];
    memcpy(buf, "\x05\x01\x00\x03\xff", 5);
    memset(buf + 5, 'a', 255);
    buf[5 + 255] = 0x01;
    buf[5 + 255 + 1] = 0xbb;
    struct socks5_request req;
    assert_int_equal(socks5_parse_request(buf, sizeof(buf), &req), (int)sizeof(buf));
    assert_int_equal(strlen(req.host), 255);
    assert_int_equal(req.atyp, SOCKS5_ATYP_DOMAIN);
    assert_int_equal(req.port, 443);
    assert_int_equal(socks5_parse_request(buf, sizeof(buf) - 1, &req), 0);
}

/* T19: the same destination by address and by name are told apart. */
static void test_t19_ip_vs_name(void **state)
{
    (void)state;
    struct socks5_request by_ip, by_name;
    static const uint8_t ip[] = { 5, 1, 0, 1, 192, 0, 2, 7, 1, 187 };
    static const uint8_t name[] = { 5, 1, 0, 3, 12, 'a', 'l', 'l', 'o', 'w', 'e', 'd',
                                    '.', 't', 'e', 's', 't', 1, 187 };
    assert_int_equal(socks5_parse_request(ip, sizeof(ip), &by_ip), (int)sizeof(ip));
    assert_int_equal(socks5_parse_request(name, sizeof(name), &by_name), (int)sizeof(name));
    assert_int_equal(by_ip.atyp, SOCKS5_ATYP_IPV4);
    assert_string_equal(by_ip.host, "192.0.2.7");
    assert_int_equal(by_name.atyp, SOCKS5_ATYP_DOMAIN);
    assert_string_equal(by_name.host, "allowed.test");
    /* A name that is an address literal stays a name: the policy decides. */
    static const uint8_t lit[] = { 5, 1, 0, 3, 9, '1', '2', '7', '.', '0', '.', '0', '.', '1', 0, 80 };
    assert_int_equal(socks5_parse_request(lit, sizeof(lit), &by_name), (int)sizeof(lit));
    assert_int_equal(by_name.atyp, SOCKS5_ATYP_DOMAIN);
    assert_string_equal(by_name.host, "127.0.0.1");
}

static void test_reply(void **state)
{
    (void)state;
    uint8_t out[16];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(socks5_reply(out, SOCKS5_OK), 10);
    static const uint8_t ok[10] = { 5, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal(out, ok, 10);
    assert_int_equal(out[10], 0xee);
    assert_int_equal(socks5_reply(out, SOCKS5_NOT_ALLOWED), 10);
    static const uint8_t denied[10] = { 5, 2, 0, 1, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal(out, denied, 10);
    assert_int_equal(socks5_reply(out, SOCKS5_CMD_UNSUPPORTED), 10);
    assert_int_equal(out[1], 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_greeting_255_methods),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_request_prefixes),
        cmocka_unit_test(test_domain_255),
        cmocka_unit_test(test_t19_ip_vs_name),
        cmocka_unit_test(test_reply),
    };
    return cmocka_run_group_tests_name("socks5", tests, NULL, NULL);
}
