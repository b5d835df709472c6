/* sigv4.h: AWS Signature Version 4, enough to check a request the sandbox
 * signed with a fake key and to sign it again with the real one.
 *
 * The proxy never guesses how a client canonicalised its request: it
 * rebuilds the canonical request from the bytes it forwards, checks that the
 * client's signature verifies with the fake secret the sandbox holds, and
 * only then signs the same canonical request (with the real key id and, if
 * any, the real session token) with the real secret. Anything it cannot
 * reproduce is refused.
 *
 * Pure: no I/O. Parsers take untrusted bytes (fuzz/fuzz_sigv4.c).
 */
#ifndef CORDON_SIGV4_H
#define CORDON_SIGV4_H

#include <stdbool.h>
#include <stddef.h>

/* "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request,
 *  SignedHeaders=host;x-amz-date, Signature=<64 hex>" */
struct sigv4_auth {
    char akid[129];
    char date[9];        /* YYYYMMDD */
    char region[64];
    char service[64];
    char signed_headers[1024]; /* lower case, ';'-separated, sorted */
    char signature[65];
};

enum sigv4_kind {
    SIGV4_NONE,       /* not an AWS signature */
    SIGV4_HMAC,       /* AWS4-HMAC-SHA256 */
    SIGV4_ECDSA,      /* AWS4-ECDSA-P256-SHA256 (SigV4A): cannot be re-signed */
    SIGV4_MALFORMED,
};

/* Parse an Authorization value. */
enum sigv4_kind sigv4_parse_auth(const char *v, size_t n, struct sigv4_auth *out);

/* Format an Authorization value into out (size >= 1400). */
void sigv4_format_auth(const struct sigv4_auth *a, char *out, size_t n);

/* A request as it goes on the wire. headers are name/value pairs; names
 * compared case-insensitively. */
struct sigv4_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct sigv4_request {
    const char *method;
    const char *target;   /* path and optional query, as sent */
    const struct sigv4_header *headers;
    size_t nheaders;
    const char *payload_hash; /* 64 lower-case hex, or UNSIGNED-PAYLOAD etc. */
    const char *amz_date;     /* YYYYMMDDTHHMMSSZ */
};

/* How the path is canonicalised: S3 signs it as sent; every other service
 * normalises it and encodes it once more. */
enum sigv4_uri {
    SIGV4_URI_AS_SENT,
    SIGV4_URI_DOUBLE,
};

/* The signature (64 hex + NUL into sig) of req under a's scope and signed
 * headers, with secret. Returns 0, or -1 when the request cannot be
 * canonicalised (a signed header missing, out of memory). */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_auth *a, enum sigv4_uri uri,
               const char *secret, size_t secret_len, char sig[65]);

/* SHA-256 of data as 64 lower-case hex. */
void sigv4_sha256_hex(const void *data, size_t n, char out[65]);

/* Does the query carry a presigned AWS signature (X-Amz-Signature or
 * X-Amz-Credential)? */
bool sigv4_query_presigned(const char *target);

#endif
