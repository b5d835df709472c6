/* tls.h: TLS interception: the certificate authority, leaf certificates, and
 * the server and client contexts (OpenSSL 3).
 *
 * Invariants:
 *  - a per-run CA key exists only in the supervisor's memory, in OpenSSL's
 *    secure heap (mmap'ed, mlock'ed where the limit allows, MADV_DONTDUMP,
 *    cleared on free); it is never written anywhere;
 *  - leaves are ECDSA P-256, one key per run (also in the secure heap),
 *    minted per name on first use and cached; validity is short (7 days);
 *  - the sandbox sees only the CA certificate (in its trust bundle).
 */
#ifndef CORDON_TLS_H
#define CORDON_TLS_H

#include "cordon.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

struct tls_ca;

/* Start OpenSSL's secure heap (call once, before any key is made). */
void tls_secure_heap_init(void);

/* A CA: the user's (cert_path and key_path, PEM; RSA or EC) or, with both
 * NULL, a fresh per-run ECDSA P-256 CA. */
int tls_ca_new(const char *cert_path, const char *key_path, struct tls_ca **out,
               struct cordon_error *err);
void tls_ca_free(struct tls_ca *ca);

/* PEM of the CA certificate (public). Caller frees. */
char *tls_ca_cert_pem(const struct tls_ca *ca);

/* A leaf for host (a DNS name, or an IP address when is_ip), from the cache
 * or minted now. The returned pointers belong to the CA. */
int tls_ca_leaf(struct tls_ca *ca, const char *host, bool is_ip, X509 **cert, EVP_PKEY **key);

/* Server context for the sandbox side: TLS 1.2 and 1.3, ALPN "http/1.1"
 * only. The per-connection certificate is set by the caller. */
SSL_CTX *tls_server_ctx_new(struct cordon_error *err);

/* Client context for the upstream side: verification against the system
 * store (and the supervisor's SSL_CERT_FILE), plus extra_ca_file when set. */
SSL_CTX *tls_client_ctx_new(const char *extra_ca_file, struct cordon_error *err);

#endif
