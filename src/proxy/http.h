/* http.h: strict HTTP/1.1 message-head parsing and chunked framing.
 *
 * Owns: turning untrusted bytes from the sandbox (requests) and from the
 * network (responses) into a parsed head, refusing anything ambiguous
 * (RFC 9110, RFC 9112, and the smuggling cases of
 * shared/reference/egress-attacks.md T12-T15). Pure functions: no I/O, no
 * allocation; results point into the caller's buffer.
 *
 * Refused (request): bare LF or CR, obs-fold, whitespace before a header
 * colon, control bytes (NUL included) anywhere in the head, a head larger than
 * HTTP_MAX_HEAD or with more than HTTP_MAX_HEADERS fields, Content-Length that
 * is not plain digits or appears twice (even with equal values, even as a
 * list), Transfer-Encoding other than exactly one "chunked", Content-Length
 * together with Transfer-Encoding, Transfer-Encoding in HTTP/1.0, a missing or
 * repeated Host in HTTP/1.1, userinfo or a fragment in the target, a port with
 * a leading zero, empty, zero or above 65535, versions other than 1.0 and 1.1.
 */
#ifndef CORDON_HTTP_H
#define CORDON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD (64 * 1024)
/* Above the 190 header values (plus Host) that srt's decider protocol can
 * carry, so that cordon proxy asks about every request srt asks about. */
#define HTTP_MAX_HEADERS 256
#define HTTP_MAX_HOST 255

struct http_header {
    const char *name;   /* points into the buffer; not NUL-terminated */
    size_t name_len;
    const char *value;  /* surrounding whitespace removed */
    size_t value_len;
};

enum http_framing {
    HTTP_BODY_NONE,
    HTTP_BODY_LENGTH,      /* content_length bytes */
    HTTP_BODY_CHUNKED,
    HTTP_BODY_UNTIL_CLOSE, /* responses only */
};

enum http_target_form {
    HTTP_TARGET_ORIGIN,    /* "/path?q": not a proxy request */
    HTTP_TARGET_ABSOLUTE,  /* "http://host[:port]/path?q" */
    HTTP_TARGET_AUTHORITY, /* "host:port", CONNECT only */
    HTTP_TARGET_ASTERISK,  /* "*", OPTIONS only */
};

struct http_request {
    const char *method;
    size_t method_len;
    enum http_target_form form;
    const char *target;  /* as sent */
    size_t target_len;
    int version_minor;   /* 0 or 1 */

    /* ABSOLUTE and AUTHORITY forms: the authority, parsed. host is
     * NUL-terminated, without brackets for an IPv6 literal, not lower-cased
     * or otherwise canonicalised (that is the policy's job).
     * ORIGIN and ASTERISK forms: the Host field, parsed by the same rules
     * (port 0 when it has none: the default depends on the connection);
     * host is "" when there is no Host field (HTTP/1.0). */
    char host[HTTP_MAX_HOST + 1];
    bool host_is_ipv6;   /* was written as "[...]" */
    uint16_t port;       /* explicit, or 80 for "http" */
    bool port_explicit;

    /* ABSOLUTE and ORIGIN forms: path and query as sent, "/" when empty.
     * NULL for the AUTHORITY and ASTERISK forms. */
    const char *path;
    size_t path_len;

    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;

    const struct http_header *host_header; /* the Host field, or NULL */
    enum http_framing framing;             /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    bool keep_alive;       /* after Connection and version defaults */
    bool expect_continue;  /* "Expect: 100-continue" */
    bool upgrade;          /* Connection: upgrade with an Upgrade field */
    const struct http_header *upgrade_header;
};

struct http_response {
    int status;
    int version_minor;
    const char *reason;
    size_t reason_len;
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    enum http_framing framing;
    uint64_t content_length;
    bool keep_alive;
};

/* Parse a request head at the start of buf[0..len).
 * Returns the head's length (through the final CRLF CRLF) when complete; 0
 * when more bytes are needed (never when len >= HTTP_MAX_HEAD); otherwise the
 * negated HTTP status to answer with (-400 bad request, -431 head or fields
 * too large, -501 transfer-coding not implemented, -505 version), with *why
 * set to a static, human-readable reason. */
int http_parse_request(const char *buf, size_t len, struct http_request *req, const char **why);

/* Parse a response head. request_was_head: the request's method was HEAD
 * (no body follows whatever the fields say). Same return convention; a
 * malformed response yields -502. Interim responses (1xx) parse like any
 * other and have framing NONE. */
int http_parse_response(const char *buf, size_t len, bool request_was_head,
                        struct http_response *res, const char **why);

/* Case-insensitive field lookup; NULL when absent. */
const struct http_header *http_find(const struct http_header *h, size_t n, const char *name);

/* Does a comma-separated field value contain token (case-insensitive)? */
bool http_has_token(const char *value, size_t len, const char *token);

/* Chunked transfer coding, checked strictly and passed through verbatim.
 * Chunk sizes are hex without sign or surrounding space; chunk extensions
 * (";name[=value]") and trailer fields are allowed and validated; every line
 * ends in CRLF. Start from a zeroed struct (struct http_chunked c = {0}). */
struct http_chunked {
    int state;
    uint64_t remaining;  /* bytes left in the current chunk's data */
    unsigned digits;
    size_t line;         /* bytes in the current extension or trailer line */
    uint64_t total;      /* decoded body bytes so far */
};

/* Feed bytes; returns how many were consumed (they belong to the body and
 * are forwarded as they are), or -1 when the framing is malformed. *done is
 * set when the last chunk, trailers and the final CRLF were consumed: bytes
 * after that point are not consumed. */
long http_chunked_feed(struct http_chunked *c, const char *buf, size_t n, bool *done);

/* The same, also handing every run of chunk data (the decoded body) to
 * data(ud, p, n); a negative return from data fails the feed (-1). */
long http_chunked_decode(struct http_chunked *c, const char *buf, size_t n, bool *done,
                         int (*data)(void *ud, const char *p, size_t n), void *ud);

#endif
