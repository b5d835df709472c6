/* hello.h: what a TLS ClientHello says about its destination, read before
 * any handshake (transparent capture of a connection that is not
 * intercepted) and inside one (the server_name of an intercepted tunnel).
 *
 * Owns: the server_name extension grammar cordon accepts (RFC 6066 3: the
 * first entry must be a host_name of printable ASCII without spaces) and the
 * sniffing of a ClientHello with OpenSSL's own parser, the one the origin
 * will run, so that cordon and the server cannot read different names out of
 * the same bytes. Encrypted Client Hello (draft-ietf-tls-esni, extension
 * 0xfe0d) is reported, so callers can refuse it: its outer name is not the
 * destination (egress-attacks.md T25).
 */
#ifndef CORDON_TLS_HELLO_H
#define CORDON_TLS_HELLO_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#define TLS_EXT_ECH 0xfe0d

/* The host_name of a server_name extension body p[0..len): a list length
 * that covers the rest exactly, a first entry of type host_name (0) with a
 * name of 1 to n-1 bytes in 0x21-0x7e. Copies it, NUL-terminated, to out.
 * False for anything else (callers treat a present but unreadable name as
 * malformed). */
bool tls_sni_parse(const unsigned char *p, size_t len, char *out, size_t n);

/* The same, for the ClientHello an SSL is processing (in a client hello
 * callback). False when there is no server_name, or it is unreadable. */
bool tls_sni_of(SSL *s, char *out, size_t n);

/* Make ECH visible to SSL_client_hello_get0_ext in ctx's client hello
 * callbacks (OpenSSL 3.0 to 3.3 drop unknown extensions before them). Every
 * context whose callback looks for ECH needs it. 0 or -1. */
int tls_hello_see_ech(SSL_CTX *ctx);

struct tls_hello {
    bool ech;       /* carries encrypted_client_hello */
    bool has_sni;   /* carries server_name */
    bool bad_sni;   /* ... that tls_sni_parse refuses (sni is then "") */
    char sni[256];  /* the name, or "" */
};

/* Read the ClientHello at the start of buf[0..len), a client's first bytes,
 * with OpenSSL: 1 when it is complete and readable (*out filled; bytes after
 * it are not looked at), 0 when it may still become one with more bytes, -1
 * when it cannot (not a TLS handshake record, or a ClientHello OpenSSL
 * refuses). *ctx is a server context made on first use (OpenSSL's start-up
 * costs milliseconds, and most runs never see a captured ClientHello); the
 * caller frees it with SSL_CTX_free. buf is not modified. */
int tls_hello_read(SSL_CTX **ctx, const void *buf, size_t len, struct tls_hello *out);

#endif
