/* http.c: strict HTTP/1.1 message-head parsing and chunked framing; see
 * http.h for the API.
 *
 * Owns: the bytes-to-head step of the egress proxy, for requests from the
 * sandbox (hostile) and responses from the network (untrusted). Invariants:
 *  - pure: no allocation, no I/O, no mutable globals; every pointer in a
 *    result points into the caller's buffer, except a request path that is
 *    empty in an absolute-form target, which is the static string "/"
 *    (http.h: "/" when empty), and the path of the authority and asterisk
 *    forms, which is NULL;
 *  - anything a second implementation (the origin, or the client reading a
 *    response we relay) could frame or route differently is refused, never
 *    repaired: request smuggling lives in the gap between two lenient parsers
 *    (shared/reference/egress-attacks.md T12-T15);
 *  - a result only ever depends on complete lines: for any prefix P of B the
 *    result on P is 0 (more bytes needed) or the result on B, so a caller
 *    may re-parse as bytes arrive. Bytes after the head (a body, a pipelined
 *    request) are never read.
 *
 * Cost: each call is linear in min(len, HTTP_MAX_HEAD): memchr finds each
 * line end, then one validating pass over that line with a lookup table.
 * The API carries only buf/len, so a caller that re-parses after every read
 * pays O(len) per read; a client trickling one byte per read therefore costs
 * O(n^2) over a head of n <= 64 KiB bytes. A caller that cares should call
 * again only when the new bytes contain '\n' (a head can only complete, or
 * fail, at a line end: see the invariant above).
 *
 * Error precedence (deterministic, tested): line by line from the start
 * (request-line syntax, version, target, then each field line in order,
 * 431 for the 129th field line), then the field semantics in this order:
 * Host, Upgrade, Transfer-Encoding, Content-Length, CONNECT framing.
 */
#include "proxy/http.h"

#include <arpa/inet.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

/* ---- byte classes ----------------------------------------------------------
 * T: tchar (RFC 9110 5.6.2); F: field-value byte, HTAB SP VCHAR obs-text
 * (RFC 9110 5.5); G: VCHAR 0x21-0x7e, the bytes a request-target may hold
 * (RFC 9112 3.2 refers to RFC 3986, which is ASCII only); H: HEXDIG;
 * R: reg-name byte we accept (letters, digits, '-', '.', '_').
 * Knowingly excluded from R: RFC 3986 sub-delims and pct-encoded, which no
 * DNS name needs and which resolvers and policies would each read their own
 * way (a "%2e" dot, a "," in a name). */
enum { T = 1, F = 2, G = 4, H = 8, R = 16 };
#define __0 0
#define FVL (F)
#define VIS (F | G)
#define TOK (T | F | G)
#define ALN (T | F | G | R)
#define HEX (T | F | G | H | R)
static const unsigned char ctab[256] = {
    __0, __0, __0, __0, __0, __0, __0, __0, __0, FVL, __0, __0, __0, __0, __0, __0,
    __0, __0, __0, __0, __0, __0, __0, __0, __0, __0, __0, __0, __0, __0, __0, __0,
    FVL, TOK, VIS, TOK, TOK, TOK, TOK, TOK, VIS, VIS, TOK, TOK, VIS, ALN, ALN, VIS,
    HEX, HEX, HEX, HEX, HEX, HEX, HEX, HEX, HEX, HEX, VIS, VIS, VIS, VIS, VIS, VIS,
    VIS, HEX, HEX, HEX, HEX, HEX, HEX, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN,
    ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, VIS, VIS, VIS, TOK, ALN,
    TOK, HEX, HEX, HEX, HEX, HEX, HEX, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN,
    ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, ALN, VIS, TOK, VIS, TOK, __0,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
    FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL, FVL,
};
#undef __0
#undef FVL
#undef VIS
#undef TOK
#undef ALN
#undef HEX

static inline bool is_class(char c, unsigned cls)
{
    return (ctab[(unsigned char)c] & cls) != 0;
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int fail(const char **why, int code, const char *msg)
{
    if (why)
        *why = msg;
    return code;
}

/* Case-insensitive comparison of s[0..n) with the NUL-terminated lit. */
static bool eq_ci(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static bool eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static void trim_ows(const char **s, size_t *n)
{
    const char *p = *s;
    size_t k = *n;
    while (k > 0 && is_ows(p[0])) {
        p++;
        k--;
    }
    while (k > 0 && is_ows(p[k - 1]))
        k--;
    *s = p;
    *n = k;
}

/* ---- public helpers ------------------------------------------------------- */

const struct http_header *http_find(const struct http_header *h, size_t n, const char *name)
{
    if (!h || !name)
        return NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == len && strncasecmp(h[i].name, name, len) == 0)
            return &h[i];
    }
    return NULL;
}

/* RFC 9110 5.6.1: a list is elements separated by commas with optional
 * whitespace; empty elements are ignored. An element matches only when it is
 * exactly the token ("close;x" is not "close"). */
bool http_has_token(const char *value, size_t len, const char *token)
{
    if (!value || !token || !*token)
        return false;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && value[j] != ',')
            j++;
        const char *e = value + i;
        size_t n = j - i;
        trim_ows(&e, &n);
        if (n > 0 && eq_ci(e, n, token))
            return true;
        i = j + 1;
    }
    return false;
}

/* ---- authority ------------------------------------------------------------
 * authority = host [ ":" port ] (RFC 3986 3.2, as restricted by RFC 9110 4.2
 * for http: no userinfo). host is reg-name, IPv4address or "[" IPv6address
 * "]". The failure reasons come in two wordings, one for the request-target
 * and one for the Host field, so that a refusal says which one was wrong. */
#define AUTH_REASONS(X)                                                                      \
    X(A_EMPTY, "empty host")                                                                 \
    X(A_USERINFO, "userinfo ('@') refused (RFC 9110 4.2.4)")                                 \
    X(A_PERCENT, "percent-encoded host refused")                                             \
    X(A_HOSTCHAR, "invalid byte in host name (letters, digits, '-', '.', '_' only)")         \
    X(A_LABEL, "empty label in host name")                                                   \
    X(A_HOSTLEN, "host longer than 255 bytes")                                               \
    X(A_V6, "invalid IPv6 literal")                                                          \
    X(A_ZONE, "IPv6 zone identifier refused")                                                \
    X(A_AFTER, "unexpected byte after IPv6 literal")                                         \
    X(A_PORT, "invalid port (decimal 1-65535 without leading zero)")                         \
    X(A_NOPORT, "missing port (authority-form is host:port, RFC 9112 3.2.3)")

#define AUTH_ENUM(id, msg) id,
enum auth_err { A_OK = -1, AUTH_REASONS(AUTH_ENUM) A_COUNT };
#undef AUTH_ENUM
#define AUTH_TARGET(id, msg) [id] = "request-target authority: " msg,
static const char *const auth_target_msg[A_COUNT] = { AUTH_REASONS(AUTH_TARGET) };
#undef AUTH_TARGET
#define AUTH_HOSTF(id, msg) [id] = "Host field: " msg,
static const char *const auth_host_msg[A_COUNT] = { AUTH_REASONS(AUTH_HOSTF) };
#undef AUTH_HOSTF

struct authority {
    char host[HTTP_MAX_HOST + 1];
    bool is_ipv6;
    bool port_explicit;
    uint16_t port;
};

/* port = 1-65535, decimal, no leading zero (T15: "0443" could be read as
 * octal or as 443 by different parsers; the canonical form is the only
 * unambiguous one), not empty. */
static bool parse_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || s[0] == '0')
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static enum auth_err parse_authority(const char *s, size_t n, bool port_required,
                                     struct authority *a)
{
    a->host[0] = '\0';
    a->is_ipv6 = false;
    a->port_explicit = false;
    a->port = 0;
    if (n == 0)
        return A_EMPTY;
    /* RFC 9110 4.2.4: userinfo is deprecated for http and a classic way to
     * make a URI's host look like another ("http://allowed.test@evil.test/",
     * T14). Refused wherever it appears. */
    if (memchr(s, '@', n))
        return A_USERINFO;

    size_t i;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return A_V6;
        size_t hl = (size_t)(close - s) - 1;
        const char *h = s + 1;
        if (hl == 0)
            return A_V6;
        for (size_t k = 0; k < hl; k++) {
            if (h[k] == '%')
                return A_ZONE; /* RFC 6874 zone ids: meaningless off-host */
            if (!is_class(h[k], H) && h[k] != ':' && h[k] != '.')
                return A_V6;   /* includes IPvFuture "[v1.x]" */
        }
        if (hl > HTTP_MAX_HOST)
            return A_V6;
        memcpy(a->host, h, hl);
        a->host[hl] = '\0';
        unsigned char addr[16];
        if (inet_pton(AF_INET6, a->host, addr) != 1) {
            a->host[0] = '\0';
            return A_V6;
        }
        a->is_ipv6 = true;
        i = hl + 2;
        if (i < n && s[i] != ':') {
            a->host[0] = '\0';
            a->is_ipv6 = false;
            return A_AFTER;
        }
    } else {
        i = 0;
        while (i < n && s[i] != ':') {
            if (!is_class(s[i], R))
                return s[i] == '%' ? A_PERCENT : A_HOSTCHAR;
            /* No empty label: ".a", "a..b" and "." are not names; a single
             * trailing dot (a fully qualified name) is kept for the policy
             * to strip (T15). */
            if (s[i] == '.' && (i == 0 || s[i - 1] == '.'))
                return A_LABEL;
            i++;
        }
        if (i == 0)
            return A_EMPTY;
        if (i > HTTP_MAX_HOST)
            return A_HOSTLEN;
        memcpy(a->host, s, i);
        a->host[i] = '\0';
        /* Numeric spellings ("2130706433", "0x7f.1", "127.1") are kept as
         * written: the policy canonicalises hosts with inet_aton(3)
         * semantics, judges them as the address they name, and the proxy
         * dials and forwards only that canonical address (T5). */
    }

    if (i < n) { /* s[i] == ':' */
        if (!parse_port(s + i + 1, n - i - 1, &a->port)) {
            a->host[0] = '\0';
            a->is_ipv6 = false;
            return A_PORT;
        }
        a->port_explicit = true;
    } else if (port_required) {
        a->host[0] = '\0';
        a->is_ipv6 = false;
        return A_NOPORT;
    }
    return A_OK;
}

/* ---- lines and fields ------------------------------------------------------ */

/* Result of running out of bytes before the head is complete. The head must
 * end within HTTP_MAX_HEAD bytes: once that many are present and it has not,
 * waiting longer cannot help. */
static int need_more(size_t len, const char **why)
{
    if (len >= HTTP_MAX_HEAD)
        return fail(why, -431, "message head larger than 64 KiB");
    return 0;
}

/* Find the line that starts at pos. On success (1) the line is
 * buf[pos..*end) and the next one starts at *end + 2. RFC 9112 2.2: a
 * recipient MAY accept a bare LF, and a bare CR MUST be refused or replaced;
 * we accept CRLF only, since a lone LF is exactly the kind of line end two
 * parsers disagree on (T12). A CR inside a line is caught by the byte checks
 * of its caller (CR is in no accepted class). */
static int next_line(const char *buf, size_t lim, size_t len, size_t pos, size_t *end,
                     const char **why)
{
    const char *nl = memchr(buf + pos, '\n', lim - pos);
    if (!nl)
        return need_more(len, why);
    size_t e = (size_t)(nl - buf);
    if (e == pos || buf[e - 1] != '\r')
        return fail(why, -400, "bare LF line ending (RFC 9112 2.2: CRLF only)");
    *end = e - 1;
    return 1;
}

/* Field lines after the start line, up to and including the empty line.
 * RFC 9112 5: field-line = field-name ":" OWS field-value OWS. */
static int parse_fields(const char *buf, size_t lim, size_t len, size_t pos,
                        struct http_header *h, size_t *nh, const char **why)
{
    size_t n = 0;
    for (;;) {
        size_t end;
        int r = next_line(buf, lim, len, pos, &end, why);
        if (r <= 0)
            return r;
        if (end == pos) {
            *nh = n;
            return (int)(end + 2);
        }
        if (n == HTTP_MAX_HEADERS)
            return fail(why, -431, "more than 256 header fields");
        /* RFC 9112 5.2: obs-fold is deprecated; a server MUST either reject
         * it or replace it with SP. Replacing changes the bytes we forward,
         * so we reject. The same check refuses whitespace between the start
         * line and the first field (RFC 9112 2.2), and a "Transfer-Encoding"
         * hidden in a fold (T12). */
        if (is_ows(buf[pos]))
            return fail(why, -400, "obs-fold or leading whitespace in a field line (RFC 9112 5.2)");
        size_t i = pos;
        while (i < end && is_class(buf[i], T))
            i++;
        if (i == end)
            return fail(why, -400, "field line without a colon");
        if (buf[i] != ':') {
            /* RFC 9112 5.1: a server MUST reject whitespace between the
             * field name and the colon ("Transfer-Encoding : chunked"). */
            if (is_ows(buf[i]))
                return fail(why, -400, "whitespace between field name and colon (RFC 9112 5.1)");
            return fail(why, -400, "invalid byte in field name (RFC 9110 5.1: token)");
        }
        if (i == pos)
            return fail(why, -400, "empty field name");
        /* RFC 9110 5.5: field values are HTAB, SP, VCHAR and obs-text; NUL,
         * CR, LF and other controls MUST be rejected or replaced. */
        for (size_t k = i + 1; k < end; k++) {
            if (!is_class(buf[k], F))
                return fail(why, -400, "control byte in field value (RFC 9110 5.5)");
        }
        const char *v = buf + i + 1;
        size_t vn = end - i - 1;
        trim_ows(&v, &vn);
        h[n].name = buf + pos;
        h[n].name_len = i - pos;
        h[n].value = v;
        h[n].value_len = vn;
        n++;
        pos = end + 2;
    }
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3).
 * Returns 0 for 1.0 and 1.1 (minor in *minor), -505 for another well-formed
 * version, -400 when malformed. */
static int parse_version(const char *s, size_t n, int *minor)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || !is_digit(s[5]) || s[6] != '.' ||
        !is_digit(s[7]))
        return -400;
    if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
        return -505;
    *minor = s[7] - '0';
    return 0;
}

/* Content-Length = 1*DIGIT (RFC 9110 8.6). A list ("5, 5"), a sign or
 * whitespace inside is refused; at most 19 digits so the value fits. */
static bool parse_content_length(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* What the fields that steer framing and routing say. */
struct field_summary {
    const struct http_header *host, *cl, *te, *upgrade;
    size_t nhost, ncl, nte, nupgrade;
    bool conn_close, conn_keep_alive, conn_upgrade, expect_continue;
};

static void summarise(const struct http_header *h, size_t n, struct field_summary *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        const char *nm = h[i].name;
        size_t nl = h[i].name_len;
        if (eq_ci(nm, nl, "host")) {
            if (!s->nhost++)
                s->host = &h[i];
        } else if (eq_ci(nm, nl, "content-length")) {
            if (!s->ncl++)
                s->cl = &h[i];
        } else if (eq_ci(nm, nl, "transfer-encoding")) {
            if (!s->nte++)
                s->te = &h[i];
        } else if (eq_ci(nm, nl, "upgrade")) {
            if (!s->nupgrade++)
                s->upgrade = &h[i];
        } else if (eq_ci(nm, nl, "connection")) {
            /* Connection is a list and may be split over several lines
             * (RFC 9110 7.6.1); every line counts. */
            if (http_has_token(h[i].value, h[i].value_len, "close"))
                s->conn_close = true;
            if (http_has_token(h[i].value, h[i].value_len, "keep-alive"))
                s->conn_keep_alive = true;
            if (http_has_token(h[i].value, h[i].value_len, "upgrade"))
                s->conn_upgrade = true;
        } else if (eq_ci(nm, nl, "expect")) {
            if (eq_ci(h[i].value, h[i].value_len, "100-continue"))
                s->expect_continue = true;
        }
    }
}

/* RFC 9112 9.3: HTTP/1.1 defaults to persistent unless "close"; HTTP/1.0
 * persists only with "keep-alive". "close" wins over everything. */
static bool keep_alive(int minor, const struct field_summary *s)
{
    if (s->conn_close)
        return false;
    return minor == 1 ? true : s->conn_keep_alive;
}

/* ---- requests ------------------------------------------------------------- */

static void set_authority(struct http_request *req, const struct authority *a)
{
    memcpy(req->host, a->host, sizeof(a->host));
    req->host_is_ipv6 = a->is_ipv6;
    req->port = a->port;
    req->port_explicit = a->port_explicit;
}

/* request-target (RFC 9112 3.2). t[0..n) has only VCHAR and no '#'. */
static int parse_target(const char *m, size_t mn, const char *t, size_t n,
                        struct http_request *req, const char **why)
{
    bool connect = eq(m, mn, "CONNECT");
    struct authority a;
    enum auth_err ae;

    if (connect) {
        /* RFC 9112 3.2.3: CONNECT uses authority-form, and only CONNECT
         * does; the port is required. */
        ae = parse_authority(t, n, true, &a);
        if (ae != A_OK)
            return fail(why, -400, auth_target_msg[ae]);
        req->form = HTTP_TARGET_AUTHORITY;
        set_authority(req, &a);
        return 0;
    }
    if (t[0] == '/') {
        req->form = HTTP_TARGET_ORIGIN; /* RFC 9112 3.2.1 */
        req->path = t;
        req->path_len = n;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        /* RFC 9112 3.2.4: asterisk-form is only for a server-wide OPTIONS. */
        if (!eq(m, mn, "OPTIONS"))
            return fail(why, -400, "asterisk-form target is only for OPTIONS (RFC 9112 3.2.4)");
        req->form = HTTP_TARGET_ASTERISK;
        return 0;
    }
    /* RFC 9112 3.2.2 absolute-form. Only "http" can be forwarded: an https
     * URI sent to a proxy in the clear means the client expects the proxy to
     * originate TLS, which we do not do; such clients must use CONNECT. */
    if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
        return fail(why, -400, "absolute-form https:// target refused: use CONNECT for https");
    if (n < 7 || strncasecmp(t, "http://", 7) != 0)
        return fail(why, -400, "unsupported request-target (origin-form, http:// absolute-form, "
                               "or authority-form with CONNECT)");
    const char *auth = t + 7;
    size_t an = 0;
    while (an < n - 7 && auth[an] != '/' && auth[an] != '?')
        an++;
    ae = parse_authority(auth, an, false, &a);
    if (ae != A_OK)
        return fail(why, -400, auth_target_msg[ae]);
    if (!a.port_explicit)
        a.port = 80; /* RFC 9110 4.2.1 */
    req->form = HTTP_TARGET_ABSOLUTE;
    if (7 + an == n) {
        /* RFC 9112 3.2.1: an empty path is sent as "/". */
        req->path = "/";
        req->path_len = 1;
    } else if (auth[an] == '?') {
        /* "http://h?q": valid (empty path, then a query), but the origin-form
         * to forward would be "/?q", which is not in the buffer. No client
         * we know sends it (they write "http://h/?q"); refuse rather than
         * hand the caller a path that does not start with "/". */
        return fail(why, -400, "absolute-form target with a query but no path");
    } else {
        req->path = auth + an;
        req->path_len = n - 7 - an;
    }
    set_authority(req, &a);
    return 0;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3),
 * exactly one SP between the parts. */
static int parse_request_line(const char *s, size_t n, struct http_request *req,
                              const char **why)
{
    if (n == 0)
        /* RFC 9112 2.2 lets a server ignore an empty line before the
         * request-line; the clients we serve never send one, so it is
         * refused like any other malformed line. */
        return fail(why, -400, "empty request-line");
    size_t i = 0;
    while (i < n && is_class(s[i], T))
        i++;
    if (i == 0 || i == n || s[i] != ' ')
        return fail(why, -400, "malformed method (RFC 9110 9.1: token, then one SP)");
    req->method = s;
    req->method_len = i;

    size_t t = ++i;
    while (i < n && s[i] != ' ') {
        if (s[i] == '#')
            /* RFC 9112 3.2: a fragment is never sent; "http://evil.test#@
             * allowed.test/" reads differently to different parsers (T14). */
            return fail(why, -400, "fragment ('#') in request-target");
        if (!is_class(s[i], G))
            return fail(why, -400, "control, space or non-ASCII byte in request-target "
                                   "(RFC 9112 3.2)");
        i++;
    }
    if (i == t)
        return fail(why, -400, "empty request-target or more than one SP");
    if (i == n)
        return fail(why, -400, "request-line without HTTP version");
    req->target = s + t;
    req->target_len = i - t;

    int v = parse_version(s + i + 1, n - i - 1, &req->version_minor);
    if (v == -400)
        return fail(why, -400, "malformed HTTP version (RFC 9112 2.3)");
    if (v == -505)
        return fail(why, -505, "HTTP version not supported (1.0 and 1.1 only)");
    return parse_target(req->method, req->method_len, req->target, req->target_len, req, why);
}

int http_parse_request(const char *buf, size_t len, struct http_request *req, const char **why)
{
    if (!req || (!buf && len))
        return fail(why, -400, "no buffer");
    size_t lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;

    req->method = NULL;
    req->method_len = 0;
    req->form = HTTP_TARGET_ORIGIN;
    req->target = NULL;
    req->target_len = 0;
    req->version_minor = 0;
    req->host[0] = '\0';
    req->host_is_ipv6 = false;
    req->port = 0;
    req->port_explicit = false;
    req->path = NULL;
    req->path_len = 0;
    req->nheaders = 0;
    req->host_header = NULL;
    req->framing = HTTP_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = false;
    req->expect_continue = false;
    req->upgrade = false;
    req->upgrade_header = NULL;

    if (len == 0)
        return 0;
    size_t end;
    int r = next_line(buf, lim, len, 0, &end, why);
    if (r <= 0)
        return r;
    r = parse_request_line(buf, end, req, why);
    if (r < 0)
        return r;
    int head_len = parse_fields(buf, lim, len, end + 2, req->headers, &req->nheaders, why);
    if (head_len <= 0)
        return head_len;

    struct field_summary s;
    summarise(req->headers, req->nheaders, &s);

    /* Host: RFC 9112 3.2, a server MUST answer 400 to an HTTP/1.1 request
     * without Host, to any request with more than one, and to an invalid
     * value. It is reported separately from the target (T13): the caller
     * routes on the target's authority and rewrites Host from it. */
    if (s.nhost > 1)
        return fail(why, -400, "more than one Host field (RFC 9112 3.2)");
    if (s.nhost == 0 && req->version_minor == 1)
        return fail(why, -400, "HTTP/1.1 request without Host (RFC 9112 3.2)");
    if (s.host) {
        struct authority a;
        enum auth_err ae = parse_authority(s.host->value, s.host->value_len, false, &a);
        if (ae != A_OK)
            return fail(why, -400, auth_host_msg[ae]);
        req->host_header = s.host;
        if (req->form == HTTP_TARGET_ORIGIN || req->form == HTTP_TARGET_ASTERISK) {
            /* No authority in the target: the Host field is the authority
             * (RFC 9110 7.2). The port stays 0 when absent: its default
             * depends on the connection (80, or 443 inside TLS). */
            set_authority(req, &a);
        }
    }

    /* One Upgrade field at most, so that the one reported is the only one
     * the origin can act on (a second "Upgrade: h2c" would hide, T18). */
    if (s.nupgrade > 1)
        return fail(why, -400, "more than one Upgrade field");

    /* Transfer-Encoding. RFC 9112 6.1: a server that receives an HTTP/1.0
     * message with Transfer-Encoding MUST treat its framing as faulty; a
     * request with both Content-Length and Transfer-Encoding MAY be
     * rejected, and is (CL.TE and TE.CL smuggling, T12); a transfer coding
     * the server does not understand SHOULD get 501. We implement exactly
     * one: a lone "chunked". Anything else is either a coding we would have
     * to decode (gzip), a no-op that only exists to confuse a parser
     * ("identity", "chunked, identity") or an obfuscation ("xchunked",
     * "chunked;q=1"): refusing all of them leaves no two readings. */
    if (s.nte) {
        if (req->version_minor == 0)
            return fail(why, -400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)");
        if (s.ncl)
            return fail(why, -400, "both Content-Length and Transfer-Encoding (RFC 9112 6.1)");
        if (s.nte > 1)
            return fail(why, -400, "more than one Transfer-Encoding field");
        if (!eq_ci(s.te->value, s.te->value_len, "chunked"))
            return fail(why, -501, "Transfer-Encoding other than a lone \"chunked\" "
                                   "(RFC 9112 6.1)");
        req->framing = HTTP_BODY_CHUNKED;
    }

    /* Content-Length. RFC 9112 6.3 item 5: several fields, or a list, MAY be
     * accepted when all values agree; we refuse them (S3 of T12). */
    if (s.ncl) {
        if (s.ncl > 1)
            return fail(why, -400, "more than one Content-Length field (RFC 9112 6.3)");
        uint64_t v;
        if (!parse_content_length(s.cl->value, s.cl->value_len, &v))
            return fail(why, -400, "malformed Content-Length (RFC 9110 8.6: 1 to 19 digits)");
        req->framing = HTTP_BODY_LENGTH;
        req->content_length = v;
    }

    /* RFC 9110 9.3.6: a CONNECT request has no content; bytes after its head
     * belong to the tunnel. A length would make them ambiguous. Some clients
     * send "Content-Length: 0", which says the same thing and is accepted. */
    if (req->form == HTTP_TARGET_AUTHORITY) {
        if (req->framing == HTTP_BODY_CHUNKED ||
            (req->framing == HTTP_BODY_LENGTH && req->content_length != 0))
            return fail(why, -400, "CONNECT request with content (RFC 9110 9.3.6)");
        req->framing = HTTP_BODY_NONE;
        req->content_length = 0;
    }

    req->keep_alive = keep_alive(req->version_minor, &s);
    req->expect_continue = s.expect_continue;
    req->upgrade_header = s.upgrade;
    req->upgrade = s.conn_upgrade && s.upgrade; /* RFC 9110 7.8 */
    return head_len;
}

/* ---- responses ------------------------------------------------------------ */

/* Transfer-Encoding of a response, over every field line in order (RFC 9110
 * 5.3: lines of a list field combine). Returns 1 when the final coding is
 * chunked, 0 when chunked is absent (the body then ends at close, RFC 9112
 * 6.3 item 4), -1 when malformed: an element that is not a token with
 * optional parameters, an empty list, "chunked" with parameters, or
 * "chunked" anywhere but last (RFC 9112 6.1: chunked is applied once and
 * last) - each of which a client could frame differently from us. */
static int response_te(const struct http_header *h, size_t n)
{
    bool any = false, last_chunked = false;
    for (size_t f = 0; f < n; f++) {
        if (!eq_ci(h[f].name, h[f].name_len, "transfer-encoding"))
            continue;
        const char *v = h[f].value;
        size_t vn = h[f].value_len;
        size_t i = 0;
        while (i <= vn) {
            size_t j = i;
            while (j < vn && v[j] != ',')
                j++;
            const char *e = v + i;
            size_t en = j - i;
            trim_ows(&e, &en);
            i = j + 1;
            if (en == 0)
                continue; /* RFC 9110 5.6.1: empty list elements are ignored */
            size_t k = 0;
            while (k < en && is_class(e[k], T))
                k++;
            if (k == 0)
                return -1;
            bool chunked = eq_ci(e, k, "chunked");
            if (k < en) {
                size_t p = k;
                while (p < en && is_ows(e[p]))
                    p++;
                if (p == en || e[p] != ';' || chunked)
                    return -1;
            }
            if (last_chunked)
                return -1; /* a coding after chunked */
            any = true;
            last_chunked = chunked;
        }
    }
    if (!any)
        return -1;
    return last_chunked ? 1 : 0;
}

int http_parse_response(const char *buf, size_t len, bool request_was_head,
                        struct http_response *res, const char **why)
{
    if (!res || (!buf && len))
        return fail(why, -502, "no buffer");
    size_t lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;

    res->status = 0;
    res->version_minor = 0;
    res->reason = NULL;
    res->reason_len = 0;
    res->nheaders = 0;
    res->framing = HTTP_BODY_NONE;
    res->content_length = 0;
    res->keep_alive = false;

    /* Every failure of a response is the gateway's: the caller answers the
     * client 502 (RFC 9110 15.6.3), whatever the cause, even a head that
     * is too large. */
    if (len == 0)
        return 0;
    const char *w = NULL;
    size_t end;
    int r = next_line(buf, lim, len, 0, &end, &w);
    if (r < 0)
        return fail(why, -502, w);
    if (r == 0)
        return 0;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ]
     * (RFC 9112 4). Liberal in one harmless place: a status-line that ends
     * right after the code ("HTTP/1.1 200") is accepted with an empty reason,
     * as curl, Go and nginx do; the reason carries no meaning (RFC 9112 4:
     * a client SHOULD ignore it) and framing does not depend on it. */
    const char *s = buf;
    int v = end >= 8 ? parse_version(s, 8, &res->version_minor) : -400;
    if (v != 0)
        return fail(why, -502, v == -505 ? "response HTTP version not 1.0 or 1.1"
                                         : "malformed status-line version (RFC 9112 2.3)");
    if (end < 12 || s[8] != ' ' || !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]))
        return fail(why, -502, "malformed status code (RFC 9112 4: 3 digits)");
    int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (status < 100 || status > 599)
        return fail(why, -502, "status code outside 100-599 (RFC 9110 15)");
    if (end == 12) {
        res->reason = s + 12;
        res->reason_len = 0;
    } else {
        if (s[12] != ' ')
            return fail(why, -502, "status code not followed by SP");
        for (size_t k = 13; k < end; k++) {
            if (!is_class(s[k], F))
                return fail(why, -502, "control byte in reason-phrase (RFC 9112 4)");
        }
        res->reason = s + 13;
        res->reason_len = end - 13;
    }
    res->status = status;

    int head_len = parse_fields(buf, lim, len, end + 2, res->headers, &res->nheaders, &w);
    if (head_len < 0)
        return fail(why, -502, w);
    if (head_len == 0)
        return 0;

    struct field_summary f;
    summarise(res->headers, res->nheaders, &f);

    uint64_t cl = 0;
    if (f.ncl) {
        /* RFC 9112 6.3 item 5: several or invalid Content-Length values are
         * an unrecoverable error for a proxy (it MUST answer 502). */
        if (f.ncl > 1)
            return fail(why, -502, "more than one Content-Length field in response");
        if (!parse_content_length(f.cl->value, f.cl->value_len, &cl))
            return fail(why, -502, "malformed Content-Length in response");
    }
    int te = 0;
    if (f.nte) {
        if (res->version_minor == 0)
            return fail(why, -502, "Transfer-Encoding in an HTTP/1.0 response (RFC 9112 6.1)");
        /* RFC 9112 6.3 item 3 lets Transfer-Encoding override
         * Content-Length and says such a message "ought to be handled as an
         * error"; a proxy that relays both hands the client two framings. */
        if (f.ncl)
            return fail(why, -502, "both Content-Length and Transfer-Encoding in response");
        te = response_te(res->headers, res->nheaders);
        if (te < 0)
            return fail(why, -502, "malformed Transfer-Encoding in response");
    }

    /* RFC 9112 6.3, in its order: a response to HEAD, 1xx, 204 and 304 end
     * at the head whatever the fields say (item 1); then chunked as the
     * final coding (item 4 first half); another coding is read until close
     * (item 4 second half); then Content-Length (item 6); then close (8). */
    if (request_was_head || status < 200 || status == 204 || status == 304) {
        res->framing = HTTP_BODY_NONE;
    } else if (f.nte) {
        res->framing = te == 1 ? HTTP_BODY_CHUNKED : HTTP_BODY_UNTIL_CLOSE;
    } else if (f.ncl) {
        res->framing = HTTP_BODY_LENGTH;
        res->content_length = cl;
    } else {
        res->framing = HTTP_BODY_UNTIL_CLOSE;
    }
    res->keep_alive = res->framing != HTTP_BODY_UNTIL_CLOSE && keep_alive(res->version_minor, &f);
    return head_len;
}

/* ---- chunked transfer coding ------------------------------------------------
 * RFC 9112 7.1:
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 * Stricter than the grammar where parsers are known to disagree (the "funky
 * chunks" desync family): no BWS around ';' and '=' in extensions, no
 * whitespace around the size, at most 15 hex digits (so a size never
 * overflows and "0000000000000000005" cannot be read as two numbers), a
 * size line of at most CHUNK_LINE_MAX bytes, trailers of at most
 * CHUNK_TRAILER_MAX bytes in total, CRLF only.
 *
 * During the trailer section the size counter (remaining) is 0 and counts
 * the trailer bytes instead. */
#define CHUNK_MAX_DIGITS 15
#define CHUNK_LINE_MAX 4096
#define CHUNK_TRAILER_MAX (64 * 1024)

enum {
    CK_SIZE = 0,   /* a zeroed struct starts here */
    CK_EXT_NAME0,  /* after ';': the first byte of an extension name */
    CK_EXT_NAME,
    CK_EXT_VAL0,   /* after '=' */
    CK_EXT_TOKEN,
    CK_EXT_QUOTED,
    CK_EXT_QESC,
    CK_EXT_QEND,   /* after the closing quote */
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TR_START,   /* the start of a trailer line, or the final CRLF */
    CK_TR_NAME,
    CK_TR_VALUE,
    CK_TR_LF,
    CK_FINAL_LF,
    CK_DONE,
    CK_ERROR,
};

static long chunk_fail(struct http_chunked *c, bool *done)
{
    c->state = CK_ERROR;
    if (done)
        *done = false;
    return -1;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return ch - 'A' + 10;
}

long http_chunked_feed(struct http_chunked *c, const char *buf, size_t n, bool *done)
{
    return http_chunked_decode(c, buf, n, done, NULL, NULL);
}

long http_chunked_decode(struct http_chunked *c, const char *buf, size_t n, bool *done,
                         int (*data)(void *ud, const char *p, size_t n), void *ud)
{
    if (!c || (!buf && n))
        return -1;
    if (c->state == CK_ERROR || c->state < 0 || c->state > CK_ERROR)
        return chunk_fail(c, done);
    if (n > LONG_MAX)
        n = LONG_MAX;
    size_t i = 0;
    while (i < n && c->state != CK_DONE) {
        char ch = buf[i];
        switch (c->state) {
        case CK_DATA: {
            size_t avail = n - i;
            size_t take = c->remaining < avail ? (size_t)c->remaining : avail;
            if (data && take && data(ud, buf + i, take) < 0)
                return chunk_fail(c, done);
            i += take;
            c->remaining -= take;
            c->total += take;
            if (c->remaining == 0)
                c->state = CK_DATA_CR;
            continue;
        }
        case CK_SIZE:
        case CK_EXT_NAME0:
        case CK_EXT_NAME:
        case CK_EXT_VAL0:
        case CK_EXT_TOKEN:
        case CK_EXT_QUOTED:
        case CK_EXT_QESC:
        case CK_EXT_QEND:
            /* the size line without its CRLF */
            if (ch != '\r' && ++c->line > CHUNK_LINE_MAX)
                return chunk_fail(c, done);
            break;
        case CK_TR_START:
        case CK_TR_NAME:
        case CK_TR_VALUE:
        case CK_TR_LF:
            if (c->state == CK_TR_START && ch == '\r')
                break; /* the final CRLF is not a trailer byte */
            if (++c->remaining > CHUNK_TRAILER_MAX)
                return chunk_fail(c, done);
            break;
        default:
            break;
        }

        switch (c->state) {
        case CK_SIZE:
            if (is_class(ch, H)) {
                if (c->digits == CHUNK_MAX_DIGITS)
                    return chunk_fail(c, done);
                c->remaining = c->remaining * 16 + (uint64_t)hexval(ch);
                c->digits++;
            } else if (c->digits == 0) {
                return chunk_fail(c, done); /* "-1", " 5", an empty size */
            } else if (ch == ';') {
                c->state = CK_EXT_NAME0;
            } else if (ch == '\r') {
                c->state = CK_SIZE_LF;
            } else {
                return chunk_fail(c, done); /* "5 ", "0x5" (at the 'x'), "5\n" */
            }
            break;
        case CK_EXT_NAME0:
            if (!is_class(ch, T))
                return chunk_fail(c, done);
            c->state = CK_EXT_NAME;
            break;
        case CK_EXT_NAME:
            if (is_class(ch, T))
                break;
            if (ch == ';')
                c->state = CK_EXT_NAME0;
            else if (ch == '=')
                c->state = CK_EXT_VAL0;
            else if (ch == '\r')
                c->state = CK_SIZE_LF;
            else
                return chunk_fail(c, done);
            break;
        case CK_EXT_VAL0:
            if (ch == '"')
                c->state = CK_EXT_QUOTED;
            else if (is_class(ch, T))
                c->state = CK_EXT_TOKEN;
            else
                return chunk_fail(c, done);
            break;
        case CK_EXT_TOKEN:
            if (is_class(ch, T))
                break;
            if (ch == ';')
                c->state = CK_EXT_NAME0;
            else if (ch == '\r')
                c->state = CK_SIZE_LF;
            else
                return chunk_fail(c, done);
            break;
        case CK_EXT_QUOTED:
            /* RFC 9110 5.6.4: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E
             * / obs-text; quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (ch == '"')
                c->state = CK_EXT_QEND;
            else if (ch == '\\')
                c->state = CK_EXT_QESC;
            else if (!is_class(ch, F))
                return chunk_fail(c, done);
            break;
        case CK_EXT_QESC:
            if (!is_class(ch, F))
                return chunk_fail(c, done);
            c->state = CK_EXT_QUOTED;
            break;
        case CK_EXT_QEND:
            if (ch == ';')
                c->state = CK_EXT_NAME0;
            else if (ch == '\r')
                c->state = CK_SIZE_LF;
            else
                return chunk_fail(c, done);
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return chunk_fail(c, done);
            c->line = 0;
            c->digits = 0;
            if (c->remaining == 0) {
                c->state = CK_TR_START; /* last-chunk; remaining now counts trailers */
            } else {
                if (c->total > UINT64_MAX - c->remaining)
                    return chunk_fail(c, done);
                c->state = CK_DATA;
            }
            break;
        case CK_DATA_CR:
            if (ch != '\r')
                return chunk_fail(c, done);
            c->state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return chunk_fail(c, done);
            c->state = CK_SIZE;
            c->remaining = 0;
            c->digits = 0;
            c->line = 0;
            break;
        case CK_TR_START:
            /* Trailer fields follow the header field rules (RFC 9112 7.1.2,
             * RFC 9112 5): no obs-fold, no whitespace before the colon. */
            if (ch == '\r')
                c->state = CK_FINAL_LF;
            else if (is_class(ch, T))
                c->state = CK_TR_NAME;
            else
                return chunk_fail(c, done);
            break;
        case CK_TR_NAME:
            if (ch == ':')
                c->state = CK_TR_VALUE;
            else if (!is_class(ch, T))
                return chunk_fail(c, done);
            break;
        case CK_TR_VALUE:
            if (ch == '\r')
                c->state = CK_TR_LF;
            else if (!is_class(ch, F))
                return chunk_fail(c, done);
            break;
        case CK_TR_LF:
            if (ch != '\n')
                return chunk_fail(c, done);
            c->state = CK_TR_START;
            break;
        case CK_FINAL_LF:
            if (ch != '\n')
                return chunk_fail(c, done);
            c->state = CK_DONE;
            c->remaining = 0;
            break;
        default:
            return chunk_fail(c, done);
        }
        i++;
    }
    if (done)
        *done = c->state == CK_DONE;
    return (long)i;
}
