/* test_http.c: unit tests for src/proxy/http.c (the API in src/proxy/http.h).
 *
 * Pinned down:
 *  - every accept and reject rule of the request parser, each case with its
 *    exact return value (-400, -431, -501, -505, or the head length), and
 *    every parsed field of the accepted shapes (origin, absolute, authority
 *    and asterisk forms; IPv4, IPv6 and name hosts; framing; keep-alive,
 *    upgrade, expect);
 *  - the smuggling and confusion cases of shared/reference/egress-attacks.md:
 *    T12 (CL.TE, TE.CL, "Transfer-Encoding : chunked", duplicate CL,
 *    xchunked, TE in an obs-fold, "chunked, identity", bare LF), T13 (the
 *    URI's authority and the Host field reported separately), T14 (userinfo,
 *    fragment, "CONNECT allowed.test:443:1"), T15 (trailing dot accepted and
 *    left for the policy, "0443" refused), T5 (numeric host spellings);
 *  - incremental use: every prefix of a head is 0, the whole is its length,
 *    bytes after it (a body, a pipelined request) change nothing;
 *  - the size caps (64 KiB head, 256 fields);
 *  - response status lines, field rules and framing (RFC 9112 6.3);
 *  - the chunked decoder: valid bodies, extensions, trailers, every
 *    malformed size and line end, the caps, and that splitting the input at
 *    any byte gives the result of a single feed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http.h"

/* A case's expected result: WHOLE means "the head is the whole input". */
#define WHOLE INT_MIN

struct pcase {
    const char *name;
    const char *raw;
    size_t len;
    int want;
};
/* sizeof, not strlen: some cases carry a NUL. */
#define C(name, raw, want) { name, raw, sizeof(raw) - 1, want }

#define H "Host: a.test\r\n"

static int want_of(const struct pcase *c)
{
    return c->want == WHOLE ? (int)c->len : c->want;
}

static void check_req_case(const struct pcase *c)
{
    struct http_request req;
    const char *why = NULL;
    int r = http_parse_request(c->raw, c->len, &req, &why);
    int want = want_of(c);
    if (r != want)
        print_error("request case \"%s\": got %d, want %d (%s)\n", c->name, r, want,
                    why ? why : "no reason");
    assert_int_equal(r, want);
    if (want < 0) {
        assert_non_null(why);
        assert_true(why[0] != '\0');
    }
}

static void check_res_case(const struct pcase *c, bool head)
{
    struct http_response res;
    const char *why = NULL;
    int r = http_parse_response(c->raw, c->len, head, &res, &why);
    int want = want_of(c);
    if (r != want)
        print_error("response case \"%s\": got %d, want %d (%s)\n", c->name, r, want,
                    why ? why : "no reason");
    assert_int_equal(r, want);
    if (want < 0) {
        assert_non_null(why);
        assert_true(why[0] != '\0');
    }
}

#define RUN_REQ(table)                                                  \
    for (size_t i_ = 0; i_ < sizeof(table) / sizeof(table[0]); i_++)    \
        check_req_case(&table[i_])
#define RUN_RES(table, head)                                            \
    for (size_t i_ = 0; i_ < sizeof(table) / sizeof(table[0]); i_++)    \
        check_res_case(&table[i_], head)

static void assert_span(const char *p, size_t n, const char *want)
{
    assert_non_null(p);
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        print_error("got \"%.*s\", want \"%s\"\n", (int)n, p, want);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

static int parse_req(const char *s, struct http_request *req)
{
    const char *why = NULL;
    int r = http_parse_request(s, strlen(s), req, &why);
    if (r <= 0)
        print_error("parse of \"%s\" gave %d (%s)\n", s, r, why ? why : "");
    return r;
}

static int parse_res(const char *s, bool head, struct http_response *res)
{
    const char *why = NULL;
    int r = http_parse_response(s, strlen(s), head, res, &why);
    if (r <= 0)
        print_error("parse of \"%s\" gave %d (%s)\n", s, r, why ? why : "");
    return r;
}

/* ---- request line ---------------------------------------------------------- */

static const struct pcase request_line_cases[] = {
    C("origin-form", "GET / HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("origin-form with query", "GET /a/b?c=d&e HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("extension method token", "M-SEARCH /x HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("method of tchar punctuation", "A!#$%&'*+-.^_`|~1 / HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", WHOLE),
    C("target with every allowed punctuation", "GET /!$&'()*+,;=:@-._~%20[]{}|\\^`\"<> HTTP/1.1\r\n" H "\r\n", WHOLE),

    C("empty request-line", "\r\nGET / HTTP/1.1\r\n" H "\r\n", -400),
    C("leading SP", " GET / HTTP/1.1\r\n" H "\r\n", -400),
    C("two SP after method", "GET  / HTTP/1.1\r\n" H "\r\n", -400),
    C("two SP before version", "GET /  HTTP/1.1\r\n" H "\r\n", -400),
    C("HTAB as separator", "GET\t/ HTTP/1.1\r\n" H "\r\n", -400),
    C("trailing SP after version", "GET / HTTP/1.1 \r\n" H "\r\n", -400),
    C("no version (HTTP/0.9 style)", "GET /\r\n" H "\r\n", -400),
    C("method only", "GET\r\n" H "\r\n", -400),
    C("non-token method", "GE(T / HTTP/1.1\r\n" H "\r\n", -400),
    C("NUL in method", "GE\0T / HTTP/1.1\r\n" H "\r\n", -400),
    C("SP inside target", "GET /a b HTTP/1.1\r\n" H "\r\n", -400),
    C("control byte in target", "GET /a\x01 HTTP/1.1\r\n" H "\r\n", -400),
    C("NUL in target", "GET /a\0b HTTP/1.1\r\n" H "\r\n", -400),
    C("DEL in target", "GET /a\x7f HTTP/1.1\r\n" H "\r\n", -400),
    C("non-ASCII in target", "GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n", -400),
    C("bare CR in target", "GET /a\rb HTTP/1.1\r\n" H "\r\n", -400),
    C("fragment in origin-form", "GET /a#b HTTP/1.1\r\n" H "\r\n", -400),
    C("bare LF ends the request-line", "GET / HTTP/1.1\n" H "\r\n", -400),
    C("bare CR ends the request-line", "GET / HTTP/1.1\r\r\n" H "\r\n", -400),

    C("version lower case", "GET / http/1.1\r\n" H "\r\n", -400),
    C("version without minor", "GET / HTTP/1\r\n" H "\r\n", -400),
    C("version two-digit major", "GET / HTTP/11.1\r\n" H "\r\n", -400),
    C("version three parts", "GET / HTTP/1.1.1\r\n" H "\r\n", -400),
    C("version garbage", "GET / HTTP/x.y\r\n" H "\r\n", -400),
    C("version HTTP/2 without minor", "GET / HTTP/2\r\n" H "\r\n", -400),
    C("version HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", -505),
    C("version HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", -505),
    C("version HTTP/0.9", "GET / HTTP/0.9\r\n" H "\r\n", -505),
    C("version HTTP/3.0", "GET / HTTP/3.0\r\n" H "\r\n", -505),
    C("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -505),
};

static void test_request_line(void **state)
{
    (void)state;
    RUN_REQ(request_line_cases);
}

/* ---- request-target forms and authorities ---------------------------------- */

/* Numeric spellings of IPv4 addresses ("2130706433", "0x7f.1", "127.1") are
 * passed through as written: the policy canonicalises every host with
 * inet_aton(3) semantics and judges them as the address they name (T5), and
 * the proxy dials and forwards that canonical address, never the spelling. */
static const struct pcase target_cases[] = {
    C("absolute http", "GET http://a.test/x HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute scheme upper case", "GET HTTP://a.test/x HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute mixed-case scheme", "GET hTtP://a.test/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute without path", "GET http://a.test HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute with port", "GET http://a.test:8080/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute port 1", "GET http://a.test:1/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute port 65535", "GET http://a.test:65535/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute IPv4", "GET http://192.0.2.1/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute IPv6", "GET http://[2001:db8::1]:8080/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute v4-mapped IPv6", "GET http://[::ffff:192.0.2.1]/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute underscore host", "GET http://_dmarc.a-b.test/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute trailing-dot host", "GET http://a.test./ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("absolute numeric label not last", "GET http://1.a.test/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("CONNECT name", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", WHOLE),
    C("CONNECT IPv6", "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", WHOLE),
    C("CONNECT port 65535", "CONNECT a.test:65535 HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("CONNECT HTTP/1.0 without Host", "CONNECT a.test:443 HTTP/1.0\r\n\r\n", WHOLE),
    C("OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("OPTIONS origin-form", "OPTIONS /x HTTP/1.1\r\n" H "\r\n", WHOLE),

    C("https absolute-form", "GET https://a.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("HTTPS absolute-form upper", "GET HTTPS://a.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("ftp absolute-form", "GET ftp://a.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("scheme without slashes", "GET http:a.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("relative target", "GET a/b HTTP/1.1\r\n" H "\r\n", -400),
    C("authority-form with GET", "GET a.test:443 HTTP/1.1\r\n" H "\r\n", -400),
    C("asterisk with GET", "GET * HTTP/1.1\r\n" H "\r\n", -400),
    C("asterisk with lower-case options", "options * HTTP/1.1\r\n" H "\r\n", -400),
    C("asterisk with a suffix", "OPTIONS *x HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT origin-form", "CONNECT / HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT absolute-form", "CONNECT http://a.test:443 HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT asterisk", "CONNECT * HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT without port", "CONNECT a.test HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT empty port", "CONNECT a.test: HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT empty host", "CONNECT :443 HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT port 0", "CONNECT a.test:0 HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT port 65536", "CONNECT a.test:65536 HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT port 6 digits", "CONNECT a.test:100000 HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT port with sign", "CONNECT a.test:+443 HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT port in hex", "CONNECT a.test:0x1bb HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT IPv6 without brackets", "CONNECT ::1:443 HTTP/1.1\r\n" H "\r\n", -400),
    C("CONNECT IPv6 without port", "CONNECT [::1] HTTP/1.1\r\n" H "\r\n", -400),
    C("T14 CONNECT allowed.test:443:1", "CONNECT allowed.test:443:1 HTTP/1.1\r\n"
                                        "Host: allowed.test:443\r\n\r\n", -400),
    C("T14 userinfo", "GET http://allowed.test@evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", -400),
    C("T14 userinfo with port", "GET http://allowed.test:80@evil.test/ HTTP/1.1\r\n"
                                "Host: evil.test\r\n\r\n", -400),
    C("T14 fragment then @", "GET http://evil.test#@allowed.test/ HTTP/1.1\r\n"
                             "Host: allowed.test\r\n\r\n", -400),
    C("userinfo on CONNECT", "CONNECT u@a.test:443 HTTP/1.1\r\n" H "\r\n", -400),
    C("T15 port 0443 in URI", "GET http://allowed.test:0443/ HTTP/1.1\r\n"
                              "Host: allowed.test\r\n\r\n", -400),
    C("T15 port 0443 in CONNECT", "CONNECT allowed.test:0443 HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute empty port", "GET http://a.test:/ HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute port 0", "GET http://a.test:0/ HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute port 65536", "GET http://a.test:65536/ HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute port not digits", "GET http://a.test:8o/ HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute two ports", "GET http://a.test:80:80/ HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute empty host", "GET http:///x HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute empty host with port", "GET http://:80/ HTTP/1.1\r\n" H "\r\n", -400),
    C("absolute query without path", "GET http://a.test?x=1 HTTP/1.1\r\n" H "\r\n", -400),
    C("percent-encoded host", "GET http://a%2etest/ HTTP/1.1\r\n" H "\r\n", -400),
    C("sub-delim in host", "GET http://a!b.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("comma in host", "GET http://a,b.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("backslash in host", "GET http://a.test\\@b.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("empty label", "GET http://a..test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("leading dot", "GET http://.a.test/ HTTP/1.1\r\n" H "\r\n", -400),
    C("host only a dot", "GET http://./ HTTP/1.1\r\n" H "\r\n", -400),
    C("two trailing dots", "GET http://a.test../ HTTP/1.1\r\n" H "\r\n", -400),
    C("T5 decimal integer host", "GET http://2130706433/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("T5 hex host", "GET http://0x7f.1/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("T5 octal host", "GET http://0177.0.0.1/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("T5 short host", "GET http://127.1/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("T5 leading zero part", "GET http://127.0.0.01/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("IPv4 with trailing dot", "GET http://1.2.3.4./ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("IPv4 part above 255", "GET http://1.2.3.256/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("name ending in a hex label", "GET http://a.0x10/ HTTP/1.1\r\n" H "\r\n", WHOLE),
    C("IPv6 zone id", "GET http://[fe80::1%25eth0]/ HTTP/1.1\r\n" H "\r\n", -400),
    C("IPvFuture", "GET http://[v1.x]/ HTTP/1.1\r\n" H "\r\n", -400),
    C("IPv6 unclosed", "GET http://[::1/ HTTP/1.1\r\n" H "\r\n", -400),
    C("IPv6 empty", "GET http://[]/ HTTP/1.1\r\n" H "\r\n", -400),
    C("IPv6 invalid", "GET http://[::g]/ HTTP/1.1\r\n" H "\r\n", -400),
    C("IPv6 too many groups", "GET http://[1:2:3:4:5:6:7:8:9]/ HTTP/1.1\r\n" H "\r\n", -400),
    C("IPv6 then junk", "GET http://[::1]x/ HTTP/1.1\r\n" H "\r\n", -400),
    C("IPv6 empty port", "GET http://[::1]:/ HTTP/1.1\r\n" H "\r\n", -400),
    C("bracketed IPv4", "GET http://[1.2.3.4]/ HTTP/1.1\r\n" H "\r\n", -400),
};

static void test_targets(void **state)
{
    (void)state;
    RUN_REQ(target_cases);
}

/* A host of exactly 255 bytes is accepted, 256 refused. */
static void test_host_length(void **state)
{
    (void)state;
    char host[300];
    char buf[600];
    struct http_request req;
    const char *why;
    for (size_t n = 254; n <= 256; n++) {
        /* labels of 9 letters and a dot, then letters up to n */
        for (size_t i = 0; i < n; i++)
            host[i] = (i % 10 == 9) ? '.' : 'a';
        if (host[n - 1] == '.')
            host[n - 1] = 'b';
        host[n] = '\0';
        int len = snprintf(buf, sizeof(buf), "GET http://%s/ HTTP/1.1\r\nHost: x\r\n\r\n", host);
        int r = http_parse_request(buf, (size_t)len, &req, &why);
        if (n <= 255) {
            assert_int_equal(r, len);
            assert_string_equal(req.host, host);
        } else {
            assert_int_equal(r, -400);
        }
        len = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
        r = http_parse_request(buf, (size_t)len, &req, &why);
        assert_int_equal(r, n <= 255 ? len : -400);
    }
}

/* ---- header fields ----------------------------------------------------------- */

static const struct pcase field_cases[] = {
    C("empty value", "GET / HTTP/1.1\r\n" H "X-Empty:\r\n\r\n", WHOLE),
    C("value only whitespace", "GET / HTTP/1.1\r\n" H "X-Ws: \t \r\n\r\n", WHOLE),
    C("obs-text in value", "GET / HTTP/1.1\r\n" H "X-Utf8: caf\xc3\xa9\xff\x80\r\n\r\n", WHOLE),
    C("HTAB inside value", "GET / HTTP/1.1\r\n" H "X-Tab: a\tb\r\n\r\n", WHOLE),
    C("tchar punctuation in name", "GET / HTTP/1.1\r\n" H "!#$%&'*+-.^_`|~: v\r\n\r\n", WHOLE),
    C("colon in value", "GET / HTTP/1.1\r\n" H "X-C: a:b:c\r\n\r\n", WHOLE),

    C("T12 S2 space before colon", "POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n", -400),
    C("HTAB before colon", "GET / HTTP/1.1\r\n" H "X-A\t: v\r\n\r\n", -400),
    C("T12 obs-fold hiding TE", "POST / HTTP/1.1\r\n" H "X-A: b\r\n Transfer-Encoding: chunked\r\n\r\n", -400),
    C("T12 TE value in an obs-fold", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n chunked\r\n\r\n", -400),
    C("obs-fold with HTAB", "GET / HTTP/1.1\r\n" H "X-A: b\r\n\tc\r\n\r\n", -400),
    C("whitespace before first field", "GET / HTTP/1.1\r\n " H "\r\n", -400),
    C("field without colon", "GET / HTTP/1.1\r\n" H "X-A v\r\n\r\n", -400),
    C("empty field name", "GET / HTTP/1.1\r\n" H ": v\r\n\r\n", -400),
    C("control byte in name", "GET / HTTP/1.1\r\n" H "X\x01Y: v\r\n\r\n", -400),
    C("non-ASCII in name", "GET / HTTP/1.1\r\n" H "X\xc3\xa9: v\r\n\r\n", -400),
    C("NUL in name", "GET / HTTP/1.1\r\n" H "X\0Y: v\r\n\r\n", -400),
    C("NUL in value", "GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n", -400),
    C("bare CR in value", "GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", -400),
    C("DEL in value", "GET / HTTP/1.1\r\n" H "X-A: a\x7f\r\n\r\n", -400),
    C("ESC in value", "GET / HTTP/1.1\r\n" H "X-A: \x1b[31m\r\n\r\n", -400),
    C("CR before CRLF", "GET / HTTP/1.1\r\n" H "X-A: v\r\r\n\r\n", -400),
    C("T12 bare LF after a field", "GET / HTTP/1.1\r\n" H "X-A: v\n\r\n", -400),
    C("T12 bare LF ends the head", "GET / HTTP/1.1\r\n" H "\n", -400),
    C("T12 bare LF everywhere", "GET / HTTP/1.1\nHost: a.test\n\n", -400),
    C("T12 bare LF hides a field", "POST / HTTP/1.1\r\n" H "X-A: v\nTransfer-Encoding: chunked\r\n\r\n", -400),
};

static void test_fields(void **state)
{
    (void)state;
    RUN_REQ(field_cases);
}

/* ---- Host --------------------------------------------------------------------- */

static const struct pcase host_cases[] = {
    C("Host with port", "GET / HTTP/1.1\r\nHost: a.test:8080\r\n\r\n", WHOLE),
    C("Host IPv6", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", WHOLE),
    C("Host IPv4", "GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n", WHOLE),
    C("Host lower-case name", "GET / HTTP/1.1\r\nhost: a.test\r\n\r\n", WHOLE),
    C("Host upper-case name", "GET / HTTP/1.1\r\nHOST: a.test\r\n\r\n", WHOLE),
    C("T15 Host trailing dot and port", "GET / HTTP/1.1\r\nHost: allowed.test.:443\r\n\r\n", WHOLE),
    C("T15 Host upper case", "GET / HTTP/1.1\r\nHost: ALLOWED.test\r\n\r\n", WHOLE),
    C("HTTP/1.0 with Host", "GET / HTTP/1.0\r\n" H "\r\n", WHOLE),

    C("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", -400),
    C("absolute-form without Host", "GET http://a.test/ HTTP/1.1\r\n\r\n", -400),
    C("CONNECT HTTP/1.1 without Host", "CONNECT a.test:443 HTTP/1.1\r\n\r\n", -400),
    C("two Host fields", "GET / HTTP/1.1\r\n" H H "\r\n", -400),
    C("two different Host fields", "GET / HTTP/1.1\r\nHost: a.test\r\nhost: b.test\r\n\r\n", -400),
    C("two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\n" H H "\r\n", -400),
    C("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", -400),
    C("Host list", "GET / HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n", -400),
    C("Host with userinfo", "GET / HTTP/1.1\r\nHost: a.test@b.test\r\n\r\n", -400),
    C("T15 Host port 0443", "GET / HTTP/1.1\r\nHost: allowed.test:0443\r\n\r\n", -400),
    C("Host port 0", "GET / HTTP/1.1\r\nHost: a.test:0\r\n\r\n", -400),
    C("Host empty port", "GET / HTTP/1.1\r\nHost: a.test:\r\n\r\n", -400),
    C("Host with path", "GET / HTTP/1.1\r\nHost: a.test/x\r\n\r\n", -400),
    C("Host with SP inside", "GET / HTTP/1.1\r\nHost: a .test\r\n\r\n", -400),
    C("Host numeric spelling", "GET / HTTP/1.1\r\nHost: 2130706433\r\n\r\n", WHOLE),
    C("Host with obs-text", "GET / HTTP/1.1\r\nHost: \xc3\xa9.test\r\n\r\n", -400),
    C("absolute-form with invalid Host", "GET http://a.test/ HTTP/1.1\r\nHost: a@b\r\n\r\n", -400),
};

static void test_host(void **state)
{
    (void)state;
    RUN_REQ(host_cases);
}

/* ---- framing: Content-Length and Transfer-Encoding ------------------------- */

static const struct pcase framing_cases[] = {
    C("Content-Length", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n", WHOLE),
    C("Content-Length 0", "POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", WHOLE),
    C("Content-Length leading zeros", "POST / HTTP/1.1\r\n" H "Content-Length: 007\r\n\r\n", WHOLE),
    C("Content-Length 19 digits", "POST / HTTP/1.1\r\n" H "Content-Length: 9999999999999999999\r\n\r\n", WHOLE),
    C("Content-Length OWS", "POST / HTTP/1.1\r\n" H "Content-Length: \t5 \t\r\n\r\n", WHOLE),
    C("TE chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", WHOLE),
    C("TE Chunked mixed case", "POST / HTTP/1.1\r\n" H "transfer-encoding: ChUnKeD\r\n\r\n", WHOLE),
    C("TE chunked with OWS", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \t chunked \t\r\n\r\n", WHOLE),
    C("CONNECT with Content-Length 0", "CONNECT a.test:443 HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", WHOLE),

    C("T12 S1 CL.TE", "POST / HTTP/1.1\r\n" H "Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "0\r\n\r\nPOST /v1/files HTTP/1.1\r\n" H "\r\n", -400),
    C("T12 TE.CL", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                   "5c\r\nPOST /v1/files HTTP/1.1\r\n", -400),
    C("CL.TE with CL 0", "POST / HTTP/1.1\r\n" H "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    C("CL with TE xchunked", "POST / HTTP/1.1\r\n" H "Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n", -400),
    C("T12 S3 duplicate CL equal", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", -400),
    C("T12 S3 duplicate CL different", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", -400),
    C("CL list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", -400),
    C("CL empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", -400),
    C("CL plus sign", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", -400),
    C("CL negative", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", -400),
    C("CL hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", -400),
    C("CL inner space", "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n", -400),
    C("CL decimal point", "POST / HTTP/1.1\r\n" H "Content-Length: 5.0\r\n\r\n", -400),
    C("CL 20 digits", "POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\n", -400),
    C("T12 S4 TE xchunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", -501),
    C("TE chunked, identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, identity\r\n\r\n", -501),
    C("TE identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", -501),
    C("TE chunked;q=1", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", -501),
    C("TE gzip, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", -501),
    C("TE chunked, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", -501),
    C("TE trailing comma", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked,\r\n\r\n", -501),
    C("TE quoted", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", -501),
    C("TE empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", -501),
    C("TE with obs-text", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\xff\r\n\r\n", -501),
    C("two TE fields", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    C("TE split over two fields", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    C("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    C("TE in HTTP/1.0 with CL", "POST / HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    C("CONNECT with content", "CONNECT a.test:443 HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n", -400),
    C("CONNECT chunked", "CONNECT a.test:443 HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", -400),
    C("two Upgrade fields", "GET / HTTP/1.1\r\n" H "Connection: upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n\r\n", -400),
};

static void test_framing(void **state)
{
    (void)state;
    RUN_REQ(framing_cases);
}

/* ---- parsed fields of accepted requests ------------------------------------ */

static void test_origin_form_fields(void **state)
{
    (void)state;
    struct http_request req;
    const char *s = "GET /p/q?x=1 HTTP/1.1\r\nHost: a.test:8080\r\nX-Pad:  v w \t\r\n"
                    "Accept: */*\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_span(req.method, req.method_len, "GET");
    assert_int_equal(req.form, HTTP_TARGET_ORIGIN);
    assert_span(req.target, req.target_len, "/p/q?x=1");
    assert_int_equal(req.version_minor, 1);
    assert_string_equal(req.host, "a.test");
    assert_false(req.host_is_ipv6);
    assert_int_equal(req.port, 8080);
    assert_true(req.port_explicit);
    assert_span(req.path, req.path_len, "/p/q?x=1");
    assert_ptr_equal(req.path, req.target);
    assert_int_equal(req.nheaders, 3);
    assert_span(req.headers[0].name, req.headers[0].name_len, "Host");
    assert_span(req.headers[0].value, req.headers[0].value_len, "a.test:8080");
    assert_span(req.headers[1].name, req.headers[1].name_len, "X-Pad");
    assert_span(req.headers[1].value, req.headers[1].value_len, "v w");
    assert_span(req.headers[2].name, req.headers[2].name_len, "Accept");
    assert_span(req.headers[2].value, req.headers[2].value_len, "*/*");
    assert_ptr_equal(req.host_header, &req.headers[0]);
    assert_int_equal(req.framing, HTTP_BODY_NONE);
    assert_int_equal(req.content_length, 0);
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    assert_false(req.upgrade);
    assert_null(req.upgrade_header);
}

/* Origin-form without a port in Host: port 0, not explicit (the default is
 * the connection's). */
static void test_origin_form_default_port(void **state)
{
    (void)state;
    struct http_request req;
    const char *s = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "a.test");
    assert_int_equal(req.port, 0);
    assert_false(req.port_explicit);
    assert_span(req.path, req.path_len, "/");

    s = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.version_minor, 0);
    assert_string_equal(req.host, "");
    assert_null(req.host_header);
    assert_int_equal(req.port, 0);
    assert_false(req.keep_alive);

    s = "GET / HTTP/1.1\r\nHost: [2001:db8::2]\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "2001:db8::2");
    assert_true(req.host_is_ipv6);
}

/* T13: the authority comes from the URI; the Host field is reported apart so
 * that the caller decides and routes on one authority and rewrites Host. */
static void test_t13_absolute_vs_host(void **state)
{
    (void)state;
    struct http_request req;
    const char *s = "GET http://evil.test/x?y=1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.form, HTTP_TARGET_ABSOLUTE);
    assert_span(req.target, req.target_len, "http://evil.test/x?y=1");
    assert_string_equal(req.host, "evil.test");
    assert_int_equal(req.port, 80);
    assert_false(req.port_explicit);
    assert_false(req.host_is_ipv6);
    assert_span(req.path, req.path_len, "/x?y=1");
    assert_non_null(req.host_header);
    assert_span(req.host_header->value, req.host_header->value_len, "allowed.test");

    s = "GET http://allowed.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "allowed.test");
    assert_span(req.host_header->value, req.host_header->value_len, "evil.test");
    assert_span(req.path, req.path_len, "/");
}

static void test_absolute_form_fields(void **state)
{
    (void)state;
    struct http_request req;

    const char *s = "POST HTTP://A.Test:8080 HTTP/1.0\r\nContent-Length: 12\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_span(req.method, req.method_len, "POST");
    assert_int_equal(req.form, HTTP_TARGET_ABSOLUTE);
    assert_int_equal(req.version_minor, 0);
    assert_string_equal(req.host, "A.Test"); /* not canonicalised */
    assert_int_equal(req.port, 8080);
    assert_true(req.port_explicit);
    assert_span(req.path, req.path_len, "/"); /* empty path */
    assert_null(req.host_header);
    assert_int_equal(req.framing, HTTP_BODY_LENGTH);
    assert_int_equal(req.content_length, 12);
    assert_false(req.keep_alive);

    s = "GET http://[2001:db8::1]:8443/a HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "2001:db8::1");
    assert_true(req.host_is_ipv6);
    assert_int_equal(req.port, 8443);
    assert_span(req.path, req.path_len, "/a");

    s = "GET http://192.0.2.1/?q HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "192.0.2.1");
    assert_false(req.host_is_ipv6);
    assert_int_equal(req.port, 80);
    assert_span(req.path, req.path_len, "/?q");

    s = "GET http://a.test./ HTTP/1.1\r\n" H "\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "a.test.");
}

static void test_connect_fields(void **state)
{
    (void)state;
    struct http_request req;
    const char *s = "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n"
                    "Proxy-Connection: keep-alive\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_span(req.method, req.method_len, "CONNECT");
    assert_int_equal(req.form, HTTP_TARGET_AUTHORITY);
    assert_span(req.target, req.target_len, "allowed.test:443");
    assert_string_equal(req.host, "allowed.test");
    assert_int_equal(req.port, 443);
    assert_true(req.port_explicit);
    assert_false(req.host_is_ipv6);
    assert_null(req.path);
    assert_int_equal(req.path_len, 0);
    assert_int_equal(req.nheaders, 2);
    assert_ptr_equal(req.host_header, &req.headers[0]);
    assert_int_equal(req.framing, HTTP_BODY_NONE);
    assert_int_equal(req.content_length, 0);
    assert_true(req.keep_alive);

    s = "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "::1");
    assert_true(req.host_is_ipv6);
    assert_int_equal(req.port, 8443);
    assert_int_equal(req.framing, HTTP_BODY_NONE);

    /* The Host field of a CONNECT is not the route: the target is. */
    s = "CONNECT a.test:443 HTTP/1.1\r\nHost: b.test\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_string_equal(req.host, "a.test");
}

static void test_asterisk_fields(void **state)
{
    (void)state;
    struct http_request req;
    const char *s = "OPTIONS * HTTP/1.1\r\nHost: a.test:81\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.form, HTTP_TARGET_ASTERISK);
    assert_span(req.target, req.target_len, "*");
    assert_null(req.path);
    assert_string_equal(req.host, "a.test");
    assert_int_equal(req.port, 81);
}

static void test_body_fields(void **state)
{
    (void)state;
    struct http_request req;
    const char *s = "POST /up HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.framing, HTTP_BODY_CHUNKED);
    assert_int_equal(req.content_length, 0);

    s = "POST /up HTTP/1.1\r\n" H "Content-Length: 9999999999999999999\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.framing, HTTP_BODY_LENGTH);
    assert_true(req.content_length == 9999999999999999999ull);

    s = "POST /up HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.framing, HTTP_BODY_LENGTH);
    assert_int_equal(req.content_length, 0);

    s = "POST /up HTTP/1.1\r\n" H "Content-Length: 0042\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.content_length, 42);

    s = "GET / HTTP/1.1\r\n" H "\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    assert_int_equal(req.framing, HTTP_BODY_NONE);
}

struct conn_case {
    const char *raw;
    bool keep_alive, upgrade, upgrade_header, expect;
};

static const struct conn_case conn_cases[] = {
    { "GET / HTTP/1.1\r\n" H "\r\n", true, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", false, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: CLOSE\r\n\r\n", false, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: keep-alive, close\r\n\r\n", false, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: keep-alive\r\nConnection: close\r\n\r\n", false, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: closed\r\n\r\n", true, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: close;x\r\n\r\n", true, false, false, false },
    { "GET / HTTP/1.0\r\n\r\n", false, false, false, false },
    { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false, false, false },
    { "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false, false, false },
    { "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false, false, false },
    { "GET / HTTP/1.0\r\nConnection: x, ,keep-alive ,\r\n\r\n", true, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true, true, true, false },
    { "GET / HTTP/1.1\r\n" H "Connection: keep-alive, upgrade\r\nUpgrade: h2c\r\n\r\n", true, true, true, false },
    { "GET / HTTP/1.1\r\n" H "Upgrade: websocket\r\nConnection: x\r\nConnection: upgrade\r\n\r\n", true, true, true, false },
    { "GET / HTTP/1.1\r\n" H "Upgrade: websocket\r\n\r\n", true, false, true, false },
    { "GET / HTTP/1.1\r\n" H "Connection: upgrade\r\n\r\n", true, false, false, false },
    { "GET / HTTP/1.1\r\n" H "Connection: upgraded\r\nUpgrade: websocket\r\n\r\n", true, false, true, false },
    { "POST / HTTP/1.1\r\n" H "Expect: 100-continue\r\nContent-Length: 1\r\n\r\n", true, false, false, true },
    { "POST / HTTP/1.1\r\n" H "Expect:  100-Continue \r\n\r\n", true, false, false, true },
    { "POST / HTTP/1.1\r\n" H "Expect: 100-continue-x\r\n\r\n", true, false, false, false },
    { "POST / HTTP/1.1\r\n" H "Expect: 100-continue, foo\r\n\r\n", true, false, false, false },
};

static void test_connection_upgrade_expect(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(conn_cases) / sizeof(conn_cases[0]); i++) {
        const struct conn_case *c = &conn_cases[i];
        struct http_request req;
        assert_int_equal(parse_req(c->raw, &req), (int)strlen(c->raw));
        if (req.keep_alive != c->keep_alive || req.upgrade != c->upgrade ||
            (req.upgrade_header != NULL) != c->upgrade_header ||
            req.expect_continue != c->expect)
            print_error("connection case %zu: \"%s\"\n", i, c->raw);
        assert_int_equal(req.keep_alive, c->keep_alive);
        assert_int_equal(req.upgrade, c->upgrade);
        assert_int_equal(req.upgrade_header != NULL, c->upgrade_header);
        assert_int_equal(req.expect_continue, c->expect);
        if (req.upgrade_header)
            assert_memory_equal(req.upgrade_header->name, "Upgrade", 7);
    }
}

/* ---- incremental feeding, pipelining, caps ----------------------------------- */

static const char *const valid_heads[] = {
    "GET / HTTP/1.1\r\n" H "\r\n",
    "GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
    "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
    "POST /v1/messages HTTP/1.1\r\n" H "Content-Length: 2\r\nX-E:\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
};

static void test_every_prefix_needs_more(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(valid_heads) / sizeof(valid_heads[0]); k++) {
        const char *s = valid_heads[k];
        size_t n = strlen(s);
        struct http_request req;
        const char *why = NULL;
        for (size_t i = 0; i < n; i++) {
            /* An exact-size copy, so that ASan sees a read past the prefix. */
            char *p = malloc(i ? i : 1);
            assert_non_null(p);
            memcpy(p, s, i);
            int r = http_parse_request(p, i, &req, &why);
            if (r != 0)
                print_error("head %zu prefix %zu: %d (%s)\n", k, i, r, why ? why : "");
            assert_int_equal(r, 0);
            free(p);
        }
        assert_int_equal(http_parse_request(s, n, &req, &why), (int)n);
    }
}

static void test_pipelined(void **state)
{
    (void)state;
    struct http_request req;
    const char *why = NULL;
    const char *first = "GET /a HTTP/1.1\r\n" H "\r\n";
    const char *both = "GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\n" H "\r\n";
    assert_int_equal(http_parse_request(both, strlen(both), &req, &why), (int)strlen(first));
    assert_span(req.path, req.path_len, "/a");
    assert_int_equal(req.nheaders, 1);

    /* Bytes after the head, even garbage, are not looked at. */
    const char *body = "POST /a HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n\0\x01\n\r\xff";
    size_t head = strlen(body);
    assert_int_equal(http_parse_request(body, head + 5, &req, &why), (int)head);

    /* A response followed by the next one. */
    struct http_response res;
    const char *r2 = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    assert_int_equal(http_parse_response(r2, strlen(r2), false, &res, &why), 27);
    assert_int_equal(res.status, 204);
}

/* Build "GET / HTTP/1.1\r\nHost: a.test\r\n" plus nfields more fields. */
static size_t build_fields(char *buf, size_t cap, size_t nfields)
{
    size_t n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n" H);
    for (size_t i = 0; i < nfields; i++)
        n += (size_t)snprintf(buf + n, cap - n, "X-F%zu: v\r\n", i);
    n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    return n;
}

static void test_field_count_cap(void **state)
{
    (void)state;
    static char buf[8192];
    struct http_request req;
    const char *why = NULL;
    size_t n = build_fields(buf, sizeof(buf), HTTP_MAX_HEADERS - 1); /* 256 with Host */
    assert_int_equal(http_parse_request(buf, n, &req, &why), (int)n);
    assert_int_equal(req.nheaders, HTTP_MAX_HEADERS);
    n = build_fields(buf, sizeof(buf), HTTP_MAX_HEADERS); /* 257 */
    assert_int_equal(http_parse_request(buf, n, &req, &why), -431);

    /* The same for responses, where every failure is 502. */
    n = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n");
    for (size_t i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-F%zu: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    struct http_response res;
    assert_int_equal(http_parse_response(buf, n, false, &res, &why), (int)n);
    assert_int_equal(res.nheaders, HTTP_MAX_HEADERS);
    memcpy(buf + n - 2, "X-G: v\r\n\r\n", 10);
    assert_int_equal(http_parse_response(buf, n + 8, false, &res, &why), -502);
}

/* A head of exactly HTTP_MAX_HEAD bytes is accepted; one more byte is 431,
 * as is an incomplete head of HTTP_MAX_HEAD bytes; an incomplete head shorter
 * than that needs more. */
static void test_head_size_cap(void **state)
{
    (void)state;
    size_t cap = HTTP_MAX_HEAD + 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    struct http_request req;
    const char *why = NULL;
    const char *pre = "GET / HTTP/1.1\r\n" H "X-Big: ";
    size_t pl = strlen(pre);

    /* exactly HTTP_MAX_HEAD */
    memcpy(buf, pre, pl);
    memset(buf + pl, 'a', HTTP_MAX_HEAD - pl - 4);
    memcpy(buf + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
    assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD, &req, &why), HTTP_MAX_HEAD);
    assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD - 1, &req, &why), 0);

    /* HTTP_MAX_HEAD + 1 */
    memset(buf + pl, 'a', HTTP_MAX_HEAD - pl - 3);
    memcpy(buf + HTTP_MAX_HEAD - 3, "\r\n\r\n", 4);
    assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD + 1, &req, &why), -431);
    assert_non_null(why);
    assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD, &req, &why), -431);
    assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD - 1, &req, &why), 0);

    /* a field that never ends */
    memset(buf + pl, 'a', cap - pl);
    assert_int_equal(http_parse_request(buf, cap, &req, &why), -431);
    assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD, &req, &why), -431);
    assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD - 1, &req, &why), 0);

    /* Responses: 502. */
    memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
    struct http_response res;
    assert_int_equal(http_parse_response(buf, cap, false, &res, &why), -502);
    assert_int_equal(http_parse_response(buf, HTTP_MAX_HEAD - 1, false, &res, &why), 0);
    free(buf);
}

/* An error is reported as soon as its line is complete, and the result on a
 * longer buffer is the same error. */
static void test_early_error(void **state)
{
    (void)state;
    struct http_request req;
    const char *why = NULL;
    const char *s = "GET / HTTP/1.1\r\nX-A: a\0b\r\n";
    assert_int_equal(http_parse_request(s, 26, &req, &why), -400);
    assert_int_equal(http_parse_request(s, 25, &req, &why), 0);
    s = "GET / HTTP/9.9\r\n";
    assert_int_equal(http_parse_request(s, strlen(s), &req, &why), -505);
    s = "GET / HTTP/1.1\n";
    assert_int_equal(http_parse_request(s, strlen(s), &req, &why), -400);
}

/* ---- helpers --------------------------------------------------------------- */

static void test_find(void **state)
{
    (void)state;
    struct http_request req;
    const char *s = "GET / HTTP/1.1\r\nHost: a.test\r\nX-One: 1\r\nx-one: 2\r\n\r\n";
    assert_int_equal(parse_req(s, &req), (int)strlen(s));
    const struct http_header *h = http_find(req.headers, req.nheaders, "X-ONE");
    assert_ptr_equal(h, &req.headers[1]);
    assert_ptr_equal(http_find(req.headers, req.nheaders, "host"), &req.headers[0]);
    assert_null(http_find(req.headers, req.nheaders, "X-On"));
    assert_null(http_find(req.headers, req.nheaders, "X-One-"));
    assert_null(http_find(req.headers, 0, "Host"));
}

static void test_has_token(void **state)
{
    (void)state;
#define TOKEN(v, t, want) assert_int_equal(http_has_token(v, strlen(v), t), want)
    TOKEN("close", "close", true);
    TOKEN("Close", "close", true);
    TOKEN("keep-alive, Upgrade", "upgrade", true);
    TOKEN(" a ,\tupgrade\t, b", "upgrade", true);
    TOKEN(",,upgrade,,", "upgrade", true);
    TOKEN("upgraded", "upgrade", false);
    TOKEN("xupgrade", "upgrade", false);
    TOKEN("up grade", "upgrade", false);
    TOKEN("close;q=1", "close", false);
    TOKEN("", "close", false);
    TOKEN(",", "close", false);
    TOKEN("close", "", false);
#undef TOKEN
    /* only len bytes are read */
    assert_false(http_has_token("closed", 4, "close"));
    assert_true(http_has_token("close, x", 5, "close"));
}

/* ---- responses -------------------------------------------------------------- */

static const struct pcase response_cases[] = {
    C("200 with length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", WHOLE),
    C("HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n", WHOLE),
    C("no reason, SP kept", "HTTP/1.1 200 \r\n\r\n", WHOLE),
    C("no reason, no SP (liberal)", "HTTP/1.1 200\r\n\r\n", WHOLE),
    C("reason with obs-text and tab", "HTTP/1.1 200 \xc3\x89t\ta t\r\n\r\n", WHOLE),
    C("status 100", "HTTP/1.1 100 Continue\r\n\r\n", WHOLE),
    C("status 599", "HTTP/1.1 599 x\r\n\r\n", WHOLE),
    C("TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", WHOLE),
    C("TE split over lines", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", WHOLE),
    C("TE with params before chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo;a=1 ; b=2, chunked\r\n\r\n", WHOLE),
    C("TE gzip only", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", WHOLE),
    C("TE empty elements", "HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked,\r\n\r\n", WHOLE),

    C("T12 CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -502),
    C("duplicate CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", -502),
    C("CL list", "HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\n\r\n", -502),
    C("malformed CL", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", -502),
    C("CL 20 digits", "HTTP/1.1 200 OK\r\nContent-Length: 10000000000000000000\r\n\r\n", -502),
    C("TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -502),
    C("TE chunked, gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -502),
    C("TE chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -502),
    C("TE chunked;x=1", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", -502),
    C("TE not a list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip chunked\r\n\r\n", -502),
    C("TE empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", -502),
    C("TE quoted", "HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", -502),
    C("TE space before colon", "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n", -502),
    C("obs-fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", -502),
    C("NUL in value", "HTTP/1.1 200 OK\r\nX-A: \0\r\n\r\n", -502),
    C("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", -502),
    C("bare LF at the end", "HTTP/1.1 200 OK\r\n\n", -502),
    C("version 2.0", "HTTP/2.0 200 OK\r\n\r\n", -502),
    C("version 1.2", "HTTP/1.2 200 OK\r\n\r\n", -502),
    C("version malformed", "HTTP/1 200 OK\r\n\r\n", -502),
    C("not HTTP", "ICY 200 OK\r\n\r\n", -502),
    C("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", -502),
    C("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", -502),
    C("status 099", "HTTP/1.1 099 x\r\n\r\n", -502),
    C("status 600", "HTTP/1.1 600 x\r\n\r\n", -502),
    C("status 000", "HTTP/1.1 000 x\r\n\r\n", -502),
    C("two SP before status", "HTTP/1.1  200 OK\r\n\r\n", -502),
    C("no SP before status", "HTTP/1.1200 OK\r\n\r\n", -502),
    C("reason glued to status", "HTTP/1.1 200OK\r\n\r\n", -502),
    C("control byte in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", -502),
    C("empty status line", "\r\n\r\n", -502),
};

static void test_responses(void **state)
{
    (void)state;
    RUN_RES(response_cases, false);
}

struct framing_case {
    const char *raw;
    bool head;
    enum http_framing framing;
    uint64_t length;
    bool keep_alive;
};

static const struct framing_case res_framing[] = {
    { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, HTTP_BODY_LENGTH, 5, true },
    { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, HTTP_BODY_LENGTH, 0, true },
    { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", false, HTTP_BODY_LENGTH, 5, false },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, HTTP_BODY_CHUNKED, 0, true },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", false, HTTP_BODY_CHUNKED, 0, true },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, HTTP_BODY_UNTIL_CLOSE, 0, false },
    { "HTTP/1.1 200 OK\r\n\r\n", false, HTTP_BODY_UNTIL_CLOSE, 0, false },
    { "HTTP/1.0 200 OK\r\n\r\n", false, HTTP_BODY_UNTIL_CLOSE, 0, false },
    { "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false, HTTP_BODY_LENGTH, 3, false },
    { "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", false, HTTP_BODY_LENGTH, 3, true },
    { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 200 OK\r\n\r\n", true, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 204 No Content\r\n\r\n", false, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", false, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", false, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 100 Continue\r\n\r\n", false, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 199 x\r\n\r\n", false, HTTP_BODY_NONE, 0, true },
    { "HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\n\r\n", false, HTTP_BODY_LENGTH, 0, true },
    { "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n", false, HTTP_BODY_LENGTH, 9, true },
};

static void test_response_framing(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(res_framing) / sizeof(res_framing[0]); i++) {
        const struct framing_case *c = &res_framing[i];
        struct http_response res;
        assert_int_equal(parse_res(c->raw, c->head, &res), (int)strlen(c->raw));
        if (res.framing != c->framing || res.content_length != c->length ||
            res.keep_alive != c->keep_alive)
            print_error("framing case %zu: framing %d length %llu keep_alive %d\n", i,
                        (int)res.framing, (unsigned long long)res.content_length,
                        (int)res.keep_alive);
        assert_int_equal(res.framing, c->framing);
        assert_true(res.content_length == c->length);
        assert_int_equal(res.keep_alive, c->keep_alive);
    }
}

static void test_response_fields(void **state)
{
    (void)state;
    struct http_response res;
    const char *s = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n";
    assert_int_equal(parse_res(s, false, &res), (int)strlen(s));
    assert_int_equal(res.status, 404);
    assert_int_equal(res.version_minor, 1);
    assert_span(res.reason, res.reason_len, "Not Found");
    assert_int_equal(res.nheaders, 2);
    assert_span(res.headers[0].name, res.headers[0].name_len, "Content-Type");
    assert_span(res.headers[0].value, res.headers[0].value_len, "text/plain");
    assert_span(res.headers[1].name, res.headers[1].name_len, "Content-Length");
    assert_span(res.headers[1].value, res.headers[1].value_len, "9");
    assert_int_equal(res.framing, HTTP_BODY_LENGTH);
    assert_int_equal(res.content_length, 9);
    assert_true(res.keep_alive);

    s = "HTTP/1.0 200\r\n\r\n";
    assert_int_equal(parse_res(s, false, &res), (int)strlen(s));
    assert_int_equal(res.status, 200);
    assert_int_equal(res.version_minor, 0);
    assert_int_equal(res.reason_len, 0);
    assert_ptr_equal(res.reason, s + 12);
    assert_int_equal(res.nheaders, 0);

    /* every prefix needs more */
    s = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
    for (size_t i = 0; i < strlen(s); i++) {
        const char *why = NULL;
        assert_int_equal(http_parse_response(s, i, false, &res, &why), 0);
    }
}

/* ---- chunked ------------------------------------------------------------------ */

struct chunk_case {
    const char *name;
    const char *raw;
    size_t len;
    long want;      /* consumed, or -1 */
    bool done;
    uint64_t total; /* decoded bytes, when not -1 */
};
#define K(name, raw, want, done, total) { name, raw, sizeof(raw) - 1, want, done, total }
#define ALL (-2) /* want: the whole input */

static const struct chunk_case chunk_cases[] = {
    K("one chunk", "5\r\nhello\r\n0\r\n\r\n", ALL, true, 5),
    K("empty body", "0\r\n\r\n", ALL, true, 0),
    K("zeros as last chunk", "000\r\n\r\n", ALL, true, 0),
    K("several chunks", "1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n", ALL, true, 6),
    K("upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", ALL, true, 10),
    K("lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", ALL, true, 10),
    K("leading zeros", "00005\r\nhello\r\n0\r\n\r\n", ALL, true, 5),
    K("data with CRLF and NUL", "4\r\n\r\n\0\n\r\n0\r\n\r\n", ALL, true, 4),
    K("extension name", "5;ext\r\nhello\r\n0\r\n\r\n", ALL, true, 5),
    K("extension token value", "5;a=b;c;d=e\r\nhello\r\n0;last=1\r\n\r\n", ALL, true, 5),
    K("extension quoted value", "5;a=\"x y\\\"z\\\\\"\r\nhello\r\n0\r\n\r\n", ALL, true, 5),
    K("extension quoted empty", "5;a=\"\"\r\nhello\r\n0\r\n\r\n", ALL, true, 5),
    K("trailer", "5\r\nhello\r\n0\r\nX-T: v\r\n\r\n", ALL, true, 5),
    K("trailers", "0\r\nA: 1\r\nB:\r\nC: \t x\xff\r\n\r\n", ALL, true, 0),
    K("15 hex digits", "00000000000000f\r\n", ALL, false, 0),
    K("max size line", "fffffffffffffff\r\nab", ALL, false, 2),
    K("incomplete data", "5\r\nhel", ALL, false, 3),
    K("incomplete size", "5", ALL, false, 0),
    K("incomplete trailer", "0\r\nX: v", ALL, false, 0),
    K("stops at the end", "0\r\n\r\nGET / HTTP/1.1\r\n", 5, true, 0),
    K("stops after trailers", "1\r\nz\r\n0\r\nT: 1\r\n\r\nXYZ", 17, true, 1),

    K("negative size", "-1\r\n", -1, false, 0),
    K("leading space", " 5\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("trailing space", "5 \r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("trailing tab", "5\t\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("plus sign", "+5\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("16 hex digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("16 hex digits overflow", "10000000000000000\r\n", -1, false, 0),
    K("empty size", "\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("non-hex size", "g\r\n", -1, false, 0),
    K("bare LF after size", "5\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("CR CR after size", "5\r\rhello\r\n0\r\n\r\n", -1, false, 0),
    K("missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", -1, false, 5),
    K("bare LF after data", "5\r\nhello\n0\r\n\r\n", -1, false, 5),
    K("CR without LF after data", "5\r\nhello\r0\r\n\r\n", -1, false, 5),
    K("data longer than size", "3\r\nhello\r\n0\r\n\r\n", -1, false, 3),
    K("bare LF after last chunk", "0\n\r\n", -1, false, 0),
    K("bare LF at the end", "0\r\n\n", -1, false, 0),
    K("CR CR at the end", "0\r\n\r\r", -1, false, 0),
    K("empty extension name", "5;\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("BWS before ;", "5 ;a\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("BWS after ;", "5; a\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("BWS before =", "5;a =b\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("BWS after =", "5;a= b\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("empty extension value", "5;a=\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("junk after quoted value", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("unterminated quoted value", "5;a=\"x\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("control in quoted value", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("NUL in extension", "5;a\0\r\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("bare LF in extension", "5;a\nhello\r\n0\r\n\r\n", -1, false, 0),
    K("trailer space before colon", "0\r\nX : v\r\n\r\n", -1, false, 0),
    K("trailer obs-fold", "0\r\nX: v\r\n w\r\n\r\n", -1, false, 0),
    K("trailer without colon", "0\r\nXv\r\n\r\n", -1, false, 0),
    K("trailer empty name", "0\r\n: v\r\n\r\n", -1, false, 0),
    K("trailer NUL", "0\r\nX: a\0b\r\n\r\n", -1, false, 0),
    K("trailer bare CR", "0\r\nX: a\rb\r\n\r\n", -1, false, 0),
    K("trailer bare LF", "0\r\nX: v\n\r\n", -1, false, 0),
};

static long feed_all(const char *raw, size_t len, size_t split, bool *done, uint64_t *total)
{
    struct http_chunked c = { 0 };
    long r = http_chunked_feed(&c, raw, split, done);
    if (r < 0)
        return r;
    if (!*done) {
        assert_int_equal(r, (long)split);
        long r2 = http_chunked_feed(&c, raw + split, len - split, done);
        if (r2 < 0)
            return r2;
        r += r2;
    }
    *total = c.total;
    return r;
}

static void test_chunked(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
        const struct chunk_case *k = &chunk_cases[i];
        long want = k->want == ALL ? (long)k->len : k->want;
        struct http_chunked c = { 0 };
        bool done = !k->done;
        long r = http_chunked_feed(&c, k->raw, k->len, &done);
        if (r != want || (r >= 0 && (done != k->done || c.total != k->total)))
            print_error("chunk case \"%s\": got %ld done %d total %llu\n", k->name, r,
                        (int)done, (unsigned long long)c.total);
        assert_int_equal(r, want);
        if (r >= 0) {
            assert_int_equal(done, k->done);
            assert_true(c.total == k->total);
        }
        /* After the end or an error, the state is sticky. */
        if (r < 0) {
            assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, &done), -1);
        } else if (done) {
            assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, &done), 0);
            assert_true(done);
        }
    }
}

/* Splitting the input at any byte gives the result of a single feed. */
static void test_chunked_split_everywhere(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
        const struct chunk_case *k = &chunk_cases[i];
        long want = k->want == ALL ? (long)k->len : k->want;
        for (size_t split = 0; split <= k->len; split++) {
            bool done = false;
            uint64_t total = 0;
            long r = feed_all(k->raw, k->len, split, &done, &total);
            if (r != want)
                print_error("chunk case \"%s\" split at %zu: got %ld\n", k->name, split, r);
            assert_int_equal(r, want);
            if (r >= 0) {
                assert_int_equal(done, k->done);
                assert_true(total == k->total);
            }
        }
        /* and byte by byte */
        struct http_chunked c = { 0 };
        bool done = false;
        long sum = 0, r = 0;
        for (size_t j = 0; j < k->len && !done; j++) {
            r = http_chunked_feed(&c, k->raw + j, 1, &done);
            if (r < 0)
                break;
            sum += r;
        }
        assert_int_equal(r < 0 ? -1 : sum, want);
    }
}

static void test_chunked_caps(void **state)
{
    (void)state;
    size_t cap = 80 * 1024;
    char *buf = malloc(cap);
    assert_non_null(buf);
    struct http_chunked c = { 0 };
    bool done = false;

    /* A size line of 4096 bytes is accepted, 4097 refused. */
    buf[0] = '1';
    buf[1] = ';';
    memset(buf + 2, 'e', 4094);
    memcpy(buf + 4096, "\r\nz\r\n0\r\n\r\n", 10);
    assert_int_equal(http_chunked_feed(&c, buf, 4106, &done), 4106);
    assert_true(done);
    memset(&c, 0, sizeof(c));
    memset(buf + 2, 'e', 4095);
    memcpy(buf + 4097, "\r\nz\r\n0\r\n\r\n", 10);
    assert_int_equal(http_chunked_feed(&c, buf, 4107, &done), -1);

    /* Trailers: 64 KiB in total accepted, one byte more refused. */
    memset(&c, 0, sizeof(c));
    memcpy(buf, "0\r\nX: ", 6);
    size_t tl = 64 * 1024; /* trailer bytes, CRLF included */
    memset(buf + 6, 'v', tl - 5);
    memcpy(buf + 3 + tl - 2, "\r\n\r\n", 4);
    assert_int_equal(http_chunked_feed(&c, buf, 3 + tl + 2, &done), (long)(3 + tl + 2));
    assert_true(done);
    memset(&c, 0, sizeof(c));
    memset(buf + 6, 'v', tl - 4);
    memcpy(buf + 3 + tl - 1, "\r\n\r\n", 4);
    assert_int_equal(http_chunked_feed(&c, buf, 3 + tl + 3, &done), -1);
    free(buf);
}

/* A large chunk's data is skipped in one step, across feeds. */
static void test_chunked_large(void **state)
{
    (void)state;
    struct http_chunked c = { 0 };
    bool done = false;
    assert_int_equal(http_chunked_feed(&c, "fffffffffffffff\r\n", 17, &done), 17);
    static char data[65536];
    for (int i = 0; i < 16; i++)
        assert_int_equal(http_chunked_feed(&c, data, sizeof(data), &done), (long)sizeof(data));
    assert_true(c.total == 16u * 65536u);
    assert_true(c.remaining == 0xfffffffffffffffull - 16u * 65536u);
    assert_false(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_host_length),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_origin_form_fields),
        cmocka_unit_test(test_origin_form_default_port),
        cmocka_unit_test(test_t13_absolute_vs_host),
        cmocka_unit_test(test_absolute_form_fields),
        cmocka_unit_test(test_connect_fields),
        cmocka_unit_test(test_asterisk_fields),
        cmocka_unit_test(test_body_fields),
        cmocka_unit_test(test_connection_upgrade_expect),
        cmocka_unit_test(test_every_prefix_needs_more),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_field_count_cap),
        cmocka_unit_test(test_head_size_cap),
        cmocka_unit_test(test_early_error),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_response_fields),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_split_everywhere),
        cmocka_unit_test(test_chunked_caps),
        cmocka_unit_test(test_chunked_large),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
