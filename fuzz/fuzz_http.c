/* fuzz_http.c: libFuzzer target for the HTTP/1.1 parsers (src/proxy/http.c):
 * http_parse_request, http_parse_response and http_chunked_feed.
 *
 * The input is one byte string, used three ways: as a request head; as a
 * response head after its first byte, whose bit 0 is request_was_head (so a
 * seed for the response parser is a flag byte and then a response); as a chunked
 * body, fed whole, in two pieces split at a position derived from the input,
 * and byte by byte (and, when the input parses as a chunked request, the
 * bytes after its head as that request's body). Invariants, each an abort()
 * when broken:
 *  - the return value is in the documented set: the head length
 *    (0 < r <= min(len, HTTP_MAX_HEAD), ending in CRLF CRLF), 0 only when
 *    len < HTTP_MAX_HEAD, else -400/-431/-501/-505 for requests and -502 for
 *    responses, with a non-empty reason;
 *  - on success every pointer lies inside the head (the static "/" of an
 *    empty absolute-form path, and the NULL path of the authority and
 *    asterisk forms, excepted), nheaders <= HTTP_MAX_HEADERS, field values
 *    carry no surrounding whitespace and no CR, LF or NUL, host is
 *    NUL-terminated and at most 255 bytes, framing is consistent (LENGTH is
 *    the only framing with a content_length, CHUNKED never has a
 *    Content-Length field, a response read until close is not kept alive,
 *    HEAD/1xx/204/304 responses have no body, CONNECT has no body);
 *  - determinism: the same bytes parse to the same result, and so do the
 *    same bytes in a buffer of exactly the head's size; every prefix gives 0
 *    or the full result (checked on the prefix one byte short of the head,
 *    and on one prefix chosen from the input), read from an exact-size copy
 *    so that ASan sees any read past it;
 *  - chunked: whole, split and byte-by-byte feeding agree on the consumed
 *    count, the done flag, the error and the decoded total; a feed that is
 *    neither done nor failed consumes everything; done and error are sticky.
 */
#include "fuzz.h"

#include "proxy/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_http: invariant broken: %s (%s:%d)\n", #cond,       \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static bool inside(const char *p, size_t n, const char *base, size_t len)
{
    return p && p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* Two spans of two parses agree: both NULL, or at the same offset of their
 * buffers with the same length, or (outside both buffers) the same bytes. */
static bool same_span(const char *a, size_t an, const char *abase, size_t alen, const char *b,
                      size_t bn, const char *bbase, size_t blen)
{
    if (an != bn)
        return false;
    if (!a || !b)
        return a == b;
    bool ia = inside(a, an, abase, alen), ib = inside(b, bn, bbase, blen);
    if (ia != ib)
        return false;
    if (ia)
        return a - abase == b - bbase;
    return memcmp(a, b, an) == 0;
}

static bool is_tchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_headers(const struct http_header *h, size_t n, const char *buf, size_t head)
{
    CHECK(n <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        CHECK(inside(h[i].name, h[i].name_len, buf, head));
        CHECK(h[i].name_len > 0);
        for (size_t k = 0; k < h[i].name_len; k++)
            CHECK(is_tchar(h[i].name[k]));
        CHECK(inside(h[i].value, h[i].value_len, buf, head));
        CHECK(h[i].value > h[i].name + h[i].name_len); /* after the colon */
        if (h[i].value_len) {
            char first = h[i].value[0], last = h[i].value[h[i].value_len - 1];
            CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
        for (size_t k = 0; k < h[i].value_len; k++) {
            unsigned char c = (unsigned char)h[i].value[k];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
    }
}

static bool header_in(const struct http_header *p, const struct http_header *h, size_t n)
{
    return p >= h && p < h + n;
}

static void check_request_ok(const char *buf, size_t len, int r, const struct http_request *q)
{
    size_t head = (size_t)r;
    CHECK(head <= len && head <= HTTP_MAX_HEAD && head >= 4);
    CHECK(memcmp(buf + head - 4, "\r\n\r\n", 4) == 0);
    CHECK(q->method == buf && q->method_len > 0);
    for (size_t k = 0; k < q->method_len; k++)
        CHECK(is_tchar(q->method[k]));
    CHECK(inside(q->target, q->target_len, buf, head) && q->target_len > 0);
    CHECK(q->version_minor == 0 || q->version_minor == 1);
    CHECK(memchr(q->host, '\0', sizeof(q->host)) != NULL);
    CHECK(strlen(q->host) <= HTTP_MAX_HOST);
    check_headers(q->headers, q->nheaders, buf, head);

    switch (q->form) {
    case HTTP_TARGET_ORIGIN:
        CHECK(q->path == q->target && q->path_len == q->target_len && q->path[0] == '/');
        break;
    case HTTP_TARGET_ABSOLUTE:
        CHECK(q->host[0] != '\0' && q->port != 0);
        CHECK(q->path && q->path_len > 0 && q->path[0] == '/');
        if (!inside(q->path, q->path_len, buf, head))
            CHECK(q->path_len == 1); /* the static "/" */
        else
            CHECK(q->path + q->path_len == q->target + q->target_len);
        break;
    case HTTP_TARGET_AUTHORITY:
        CHECK(q->method_len == 7 && memcmp(q->method, "CONNECT", 7) == 0);
        CHECK(q->host[0] != '\0' && q->port != 0 && q->port_explicit);
        CHECK(q->path == NULL && q->path_len == 0);
        CHECK(q->framing == HTTP_BODY_NONE);
        break;
    case HTTP_TARGET_ASTERISK:
        CHECK(q->target_len == 1 && q->target[0] == '*');
        CHECK(q->path == NULL && q->path_len == 0);
        break;
    default:
        CHECK(!"form");
    }
    if (q->port_explicit)
        CHECK(q->port != 0);

    if (q->host_header) {
        CHECK(header_in(q->host_header, q->headers, q->nheaders));
        CHECK(q->host_header->name_len == 4 &&
              http_find(q->headers, q->nheaders, "host") == q->host_header);
    } else {
        CHECK(q->version_minor == 0 && !http_find(q->headers, q->nheaders, "host"));
    }
    if (q->upgrade_header)
        CHECK(header_in(q->upgrade_header, q->headers, q->nheaders));
    if (q->upgrade)
        CHECK(q->upgrade_header != NULL);

    bool has_cl = http_find(q->headers, q->nheaders, "content-length") != NULL;
    bool has_te = http_find(q->headers, q->nheaders, "transfer-encoding") != NULL;
    CHECK(!(has_cl && has_te));
    switch (q->framing) {
    case HTTP_BODY_NONE:
        CHECK(q->content_length == 0);
        CHECK(!has_te);
        break;
    case HTTP_BODY_LENGTH:
        CHECK(has_cl && !has_te);
        break;
    case HTTP_BODY_CHUNKED:
        CHECK(has_te && !has_cl && q->content_length == 0 && q->version_minor == 1);
        break;
    default:
        CHECK(!"request framing");
    }
}

static bool same_request(int ra, const struct http_request *a, const char *abuf, size_t alen,
                         int rb, const struct http_request *b, const char *bbuf, size_t blen)
{
    if (ra != rb)
        return false;
    if (ra <= 0)
        return true;
    if (!same_span(a->method, a->method_len, abuf, alen, b->method, b->method_len, bbuf, blen) ||
        !same_span(a->target, a->target_len, abuf, alen, b->target, b->target_len, bbuf, blen) ||
        !same_span(a->path, a->path_len, abuf, alen, b->path, b->path_len, bbuf, blen))
        return false;
    if (a->form != b->form || a->version_minor != b->version_minor ||
        strcmp(a->host, b->host) != 0 || a->host_is_ipv6 != b->host_is_ipv6 ||
        a->port != b->port || a->port_explicit != b->port_explicit ||
        a->nheaders != b->nheaders || a->framing != b->framing ||
        a->content_length != b->content_length || a->keep_alive != b->keep_alive ||
        a->expect_continue != b->expect_continue || a->upgrade != b->upgrade)
        return false;
    if ((a->host_header ? a->host_header - a->headers : -1) !=
        (b->host_header ? b->host_header - b->headers : -1))
        return false;
    if ((a->upgrade_header ? a->upgrade_header - a->headers : -1) !=
        (b->upgrade_header ? b->upgrade_header - b->headers : -1))
        return false;
    for (size_t i = 0; i < a->nheaders; i++) {
        const struct http_header *x = &a->headers[i], *y = &b->headers[i];
        if (!same_span(x->name, x->name_len, abuf, alen, y->name, y->name_len, bbuf, blen) ||
            !same_span(x->value, x->value_len, abuf, alen, y->value, y->value_len, bbuf, blen))
            return false;
    }
    return true;
}

/* The result on buf[0..k), from an exact-size copy, is 0 or (for k at or
 * past the head) the full result. */
static void check_request_prefix(const char *buf, size_t k, int r, const struct http_request *q,
                                 size_t len)
{
    static struct http_request p;
    char *copy = malloc(k ? k : 1);
    if (!copy)
        return;
    memcpy(copy, buf, k);
    const char *why = NULL;
    int rp = http_parse_request(copy, k, &p, &why);
    if (r > 0 && k >= (size_t)r)
        CHECK(same_request(r, q, buf, len, rp, &p, copy, k));
    else
        CHECK(rp == 0 || rp == r);
    free(copy);
}

static int check_request(const char *buf, size_t len, size_t cut)
{
    static struct http_request q, q2;
    const char *why = NULL;
    int r = http_parse_request(buf, len, &q, &why);
    if (r > 0) {
        check_request_ok(buf, len, r, &q);
    } else if (r == 0) {
        CHECK(len < HTTP_MAX_HEAD);
    } else {
        CHECK(r == -400 || r == -431 || r == -501 || r == -505);
        CHECK(why && why[0]);
    }
    const char *why2 = NULL;
    int r2 = http_parse_request(buf, len, &q2, &why2);
    CHECK(same_request(r, &q, buf, len, r2, &q2, buf, len));
    CHECK(r >= 0 || why2 == why);

    if (r > 0) {
        check_request_prefix(buf, (size_t)r, r, &q, len);
        check_request_prefix(buf, (size_t)r - 1, r, &q, len);
    }
    check_request_prefix(buf, cut, r, &q, len);
    return r > 0 && q.framing == HTTP_BODY_CHUNKED ? r : 0;
}

/* ---- responses ---------------------------------------------------------- */

static bool same_response(int ra, const struct http_response *a, const char *abuf, size_t alen,
                          int rb, const struct http_response *b, const char *bbuf, size_t blen)
{
    if (ra != rb)
        return false;
    if (ra <= 0)
        return true;
    if (a->status != b->status || a->version_minor != b->version_minor ||
        a->nheaders != b->nheaders || a->framing != b->framing ||
        a->content_length != b->content_length || a->keep_alive != b->keep_alive ||
        !same_span(a->reason, a->reason_len, abuf, alen, b->reason, b->reason_len, bbuf, blen))
        return false;
    for (size_t i = 0; i < a->nheaders; i++) {
        const struct http_header *x = &a->headers[i], *y = &b->headers[i];
        if (!same_span(x->name, x->name_len, abuf, alen, y->name, y->name_len, bbuf, blen) ||
            !same_span(x->value, x->value_len, abuf, alen, y->value, y->value_len, bbuf, blen))
            return false;
    }
    return true;
}

static void check_response_ok(const char *buf, size_t len, int r, bool head,
                              const struct http_response *s)
{
    size_t hl = (size_t)r;
    CHECK(hl <= len && hl <= HTTP_MAX_HEAD && hl >= 4);
    CHECK(memcmp(buf + hl - 4, "\r\n\r\n", 4) == 0);
    CHECK(s->status >= 100 && s->status <= 599);
    CHECK(s->version_minor == 0 || s->version_minor == 1);
    CHECK(inside(s->reason, s->reason_len, buf, hl));
    check_headers(s->headers, s->nheaders, buf, hl);
    bool has_cl = http_find(s->headers, s->nheaders, "content-length") != NULL;
    bool has_te = http_find(s->headers, s->nheaders, "transfer-encoding") != NULL;
    CHECK(!(has_cl && has_te));
    if (has_te)
        CHECK(s->version_minor == 1);
    if (head || s->status < 200 || s->status == 204 || s->status == 304)
        CHECK(s->framing == HTTP_BODY_NONE);
    switch (s->framing) {
    case HTTP_BODY_NONE:
        CHECK(s->content_length == 0);
        break;
    case HTTP_BODY_LENGTH:
        CHECK(has_cl);
        break;
    case HTTP_BODY_CHUNKED:
        CHECK(has_te && s->content_length == 0);
        break;
    case HTTP_BODY_UNTIL_CLOSE:
        CHECK(!has_cl && s->content_length == 0 && !s->keep_alive);
        break;
    default:
        CHECK(!"response framing");
    }
}

static void check_response_prefix(const char *buf, size_t k, bool head, int r,
                                  const struct http_response *s, size_t len)
{
    static struct http_response p;
    char *copy = malloc(k ? k : 1);
    if (!copy)
        return;
    memcpy(copy, buf, k);
    const char *why = NULL;
    int rp = http_parse_response(copy, k, head, &p, &why);
    if (r > 0 && k >= (size_t)r)
        CHECK(same_response(r, s, buf, len, rp, &p, copy, k));
    else
        CHECK(rp == 0 || rp == r);
    free(copy);
}

static void check_response(const char *buf, size_t len, bool head, size_t cut)
{
    static struct http_response s, s2;
    const char *why = NULL;
    int r = http_parse_response(buf, len, head, &s, &why);
    if (r > 0) {
        check_response_ok(buf, len, r, head, &s);
    } else if (r == 0) {
        CHECK(len < HTTP_MAX_HEAD);
    } else {
        CHECK(r == -502);
        CHECK(why && why[0]);
    }
    const char *why2 = NULL;
    int r2 = http_parse_response(buf, len, head, &s2, &why2);
    CHECK(same_response(r, &s, buf, len, r2, &s2, buf, len));
    if (r > 0) {
        check_response_prefix(buf, (size_t)r, head, r, &s, len);
        check_response_prefix(buf, (size_t)r - 1, head, r, &s, len);
    }
    check_response_prefix(buf, cut, head, r, &s, len);
}

/* ---- chunked ------------------------------------------------------------ */

struct chunk_result {
    long consumed; /* or -1 */
    bool done;
    uint64_t total;
};

/* Feed one piece into c, checking the per-call contract; returns false when
 * feeding should stop (error or done). */
static bool feed(struct http_chunked *c, const char *p, size_t n, struct chunk_result *res)
{
    bool done = false;
    long r = http_chunked_feed(c, p, n, &done);
    if (r < 0) {
        CHECK(r == -1);
        res->consumed = -1;
        /* sticky */
        bool d2 = true;
        CHECK(http_chunked_feed(c, "0\r\n\r\n", 5, &d2) == -1);
        return false;
    }
    CHECK((size_t)r <= n);
    if (!done)
        CHECK((size_t)r == n);
    res->consumed += r;
    res->total = c->total;
    res->done = done;
    if (done) {
        bool d2 = false;
        CHECK(http_chunked_feed(c, "0\r\n\r\n", 5, &d2) == 0 && d2);
        return false;
    }
    return true;
}

static void check_chunked(const char *buf, size_t len, size_t split)
{
    struct chunk_result whole = { 0 }, two = { 0 }, bytes = { 0 };
    struct http_chunked c = { 0 };
    feed(&c, buf, len, &whole);
    if (whole.consumed >= 0)
        CHECK(whole.total <= (uint64_t)whole.consumed);

    struct http_chunked c2 = { 0 };
    if (feed(&c2, buf, split, &two))
        feed(&c2, buf + split, len - split, &two);

    struct http_chunked c3 = { 0 };
    for (size_t i = 0; i < len; i++) {
        if (!feed(&c3, buf + i, 1, &bytes))
            break;
    }

    CHECK(two.consumed == whole.consumed && bytes.consumed == whole.consumed);
    if (whole.consumed >= 0) {
        CHECK(two.done == whole.done && bytes.done == whole.done);
        CHECK(two.total == whole.total && bytes.total == whole.total);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t cut = size ? ((size_t)data[size - 1] * 257u + data[0]) % (size + 1) : 0;

    int body = check_request(buf, size, cut);
    if (size > 0)
        check_response(buf + 1, size - 1, data[0] & 1, cut ? cut - 1 : 0);
    check_chunked(buf, size, cut);
    if (body > 0) {
        size_t rest = size - (size_t)body;
        check_chunked(buf + body, rest, rest ? cut % (rest + 1) : 0);
    }
    return 0;
}
