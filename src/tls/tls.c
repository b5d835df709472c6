/* tls.c: see tls.h. */
#include "tls.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define LEAF_CACHE_MAX 1024
#define LEAF_DAYS 7
#define CA_DAYS 30

struct leaf {
    char host[256];
    X509 *cert;
};

struct tls_ca {
    X509 *cert;
    EVP_PKEY *key;      /* the CA key */
    EVP_PKEY *leaf_key; /* one key for every leaf of this run */
    struct leaf *leaves;
    size_t nleaves;
};

/* The secure heap is one private anonymous mapping: mark it so that the
 * sandbox's init, cloned from this process, sees only zeros there (the CA key
 * must exist in the supervisor alone). OpenSSL does not say where the heap
 * is, so find the mapping of a secure allocation in /proc/self/maps. */
static void secure_heap_wipe_on_fork(void)
{
    void *probe = OPENSSL_secure_malloc(32);
    if (!probe)
        return;
    uintptr_t a = (uintptr_t)probe;
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
            (void)madvise((void *)lo, hi - lo, MADV_WIPEONFORK);
            break;
        }
    }
    if (f)
        fclose(f);
    OPENSSL_secure_free(probe);
}

void tls_secure_heap_init(void)
{
    /* Private keys (BIGNUMs of EC and RSA keys) go to the secure heap once it
     * exists: mlock'ed when RLIMIT_MEMLOCK allows, MADV_DONTDUMP always,
     * cleared on free (OPENSSL_secure_malloc(3)). */
    if (!CRYPTO_secure_malloc_initialized() && CRYPTO_secure_malloc_init(256 * 1024, 32) == 1)
        secure_heap_wipe_on_fork();
}

static int ssl_err(struct cordon_error *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return cordon_err_set(err, EIO, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static EVP_PKEY *new_p256(void)
{
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int r = X509_add_ext(cert, ext, -1) ? 0 : -1;
    X509_EXTENSION_free(ext);
    return r;
}

static int random_serial(X509 *cert)
{
    unsigned char buf[16];
    if (RAND_bytes(buf, sizeof(buf)) != 1)
        return -1;
    buf[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(buf, sizeof(buf), NULL);
    if (!bn)
        return -1;
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    return ai ? 0 : -1;
}

static int make_ca(struct tls_ca *ca, struct cordon_error *err)
{
    ca->key = new_p256();
    if (!ca->key)
        return ssl_err(err, "generating the CA key");
    ca->cert = X509_new();
    if (!ca->cert)
        return ssl_err(err, "creating the CA certificate");
    X509 *c = ca->cert;
    char cn[96];
    unsigned char id[6];
    RAND_bytes(id, sizeof(id));
    snprintf(cn, sizeof(cn), "cordon per-run CA %02x%02x%02x%02x%02x%02x", id[0], id[1], id[2],
             id[3], id[4], id[5]);
    X509_NAME *name = X509_get_subject_name(c);
    if (!X509_set_version(c, 2) || random_serial(c) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(c), 86400L * CA_DAYS) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"cordon", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(c, name) || !X509_set_pubkey(c, ca->key) ||
        add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
        add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(c, c, NID_subject_key_identifier, "hash") < 0 ||
        !X509_sign(c, ca->key, EVP_sha256()))
        return ssl_err(err, "creating the CA certificate");
    return 0;
}

static int load_ca(struct tls_ca *ca, const char *cert_path, const char *key_path,
                   struct cordon_error *err)
{
    FILE *f = fopen(cert_path, "re");
    if (!f)
        return cordon_err_sys(err, errno, "tlsTerminate.caCertPath %s", cert_path);
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!ca->cert)
        return ssl_err(err, "tlsTerminate.caCertPath: not a PEM certificate");
    f = fopen(key_path, "re");
    if (!f)
        return cordon_err_sys(err, errno, "tlsTerminate.caKeyPath %s", key_path);
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!ca->key)
        return ssl_err(err, "tlsTerminate.caKeyPath: not a PEM private key");
    if (X509_check_private_key(ca->cert, ca->key) != 1)
        return cordon_err_set(err, EINVAL, "tlsTerminate: caKeyPath does not match caCertPath");
    if (X509_cmp_current_time(X509_get0_notBefore(ca->cert)) > 0)
        return cordon_err_set(err, EINVAL, "tlsTerminate.caCertPath: not valid yet");
    if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) < 0)
        return cordon_err_set(err, EINVAL, "tlsTerminate.caCertPath: expired");
    if (X509_check_ca(ca->cert) == 0)
        return cordon_err_set(err, EINVAL, "tlsTerminate.caCertPath: not a CA certificate");
    return 0;
}

int tls_ca_new(const char *cert_path, const char *key_path, struct tls_ca **out,
               struct cordon_error *err)
{
    tls_secure_heap_init();
    struct tls_ca *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return cordon_err_set(err, ENOMEM, "out of memory");
    int r = cert_path ? load_ca(ca, cert_path, key_path, err) : make_ca(ca, err);
    if (r == 0) {
        ca->leaf_key = new_p256();
        if (!ca->leaf_key)
            r = ssl_err(err, "generating the leaf key");
    }
    if (r < 0) {
        tls_ca_free(ca);
        return r;
    }
    *out = ca;
    return 0;
}

void tls_ca_free(struct tls_ca *ca)
{
    if (!ca)
        return;
    for (size_t i = 0; i < ca->nleaves; i++)
        X509_free(ca->leaves[i].cert);
    free(ca->leaves);
    /* The keys' private parts live in the secure heap, which OpenSSL clears
     * when they are freed. */
    EVP_PKEY_free(ca->key);
    EVP_PKEY_free(ca->leaf_key);
    X509_free(ca->cert);
    explicit_bzero(ca, sizeof(*ca));
    free(ca);
}

char *tls_ca_cert_pem(const struct tls_ca *ca)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_X509(b, ca->cert)) {
        BIO_free(b);
        return NULL;
    }
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = n > 0 ? strndup(data, (size_t)n) : NULL;
    BIO_free(b);
    return s;
}

static X509 *mint(struct tls_ca *ca, const char *host, bool is_ip)
{
    X509 *c = X509_new();
    if (!c)
        return NULL;
    char san[300];
    snprintf(san, sizeof(san), "%s:%s", is_ip ? "IP" : "DNS", host);
    X509_NAME *name = X509_get_subject_name(c);
    /* The CN is informational (clients match the SAN); a name longer than 64
     * bytes does not fit in a CN, so it is left out then. */
    bool cn_ok = strlen(host) <= 64;
    if (!X509_set_version(c, 2) || random_serial(c) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(c), 86400L * LEAF_DAYS) ||
        (cn_ok && !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                              (const unsigned char *)host, -1, -1, 0)) ||
        !X509_set_issuer_name(c, X509_get_subject_name(ca->cert)) ||
        !X509_set_pubkey(c, ca->leaf_key) ||
        add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(c, ca->cert, NID_ext_key_usage, "serverAuth") < 0 ||
        add_ext(c, ca->cert, NID_subject_alt_name, san) < 0 ||
        add_ext(c, ca->cert, NID_authority_key_identifier, "keyid:always") < 0 ||
        !X509_sign(c, ca->key, EVP_sha256())) {
        X509_free(c);
        return NULL;
    }
    return c;
}

int tls_ca_leaf(struct tls_ca *ca, const char *host, bool is_ip, X509 **cert, EVP_PKEY **key)
{
    for (size_t i = 0; i < ca->nleaves; i++) {
        if (strcmp(ca->leaves[i].host, host) == 0) {
            *cert = ca->leaves[i].cert;
            *key = ca->leaf_key;
            return 0;
        }
    }
    X509 *c = mint(ca, host, is_ip);
    if (!c) {
        ERR_clear_error();
        return -1;
    }
    if (ca->nleaves == LEAF_CACHE_MAX) {
        /* Full: drop the oldest. */
        X509_free(ca->leaves[0].cert);
        memmove(ca->leaves, ca->leaves + 1, (ca->nleaves - 1) * sizeof(*ca->leaves));
        ca->nleaves--;
    }
    if (ca->nleaves % 64 == 0) {
        struct leaf *v = realloc(ca->leaves, (ca->nleaves + 64) * sizeof(*v));
        if (!v) {
            X509_free(c);
            return -1;
        }
        ca->leaves = v;
    }
    snprintf(ca->leaves[ca->nleaves].host, sizeof(ca->leaves[0].host), "%s", host);
    ca->leaves[ca->nleaves++].cert = c;
    *cert = c;
    *key = ca->leaf_key;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    /* HTTP/1.1 only: HTTP/2 would need a check per stream (T3, T18). */
    static const unsigned char h11[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    if (SSL_select_next_proto(&sel, &sellen, h11, sizeof(h11), in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        *outlen = sellen;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* The ECH extension itself is refused in the ClientHello callback, which
 * runs first; should it ever get here, refuse it too. */
static int ech_parse(SSL *s, unsigned int ext_type, unsigned int context,
                     const unsigned char *in, size_t inlen, X509 *x, size_t chainidx, int *al,
                     void *parse_arg)
{
    (void)s, (void)ext_type, (void)context, (void)in, (void)inlen, (void)x, (void)chainidx;
    (void)parse_arg;
    *al = SSL_AD_ACCESS_DENIED;
    return 0;
}

SSL_CTX *tls_server_ctx_new(struct cordon_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, "creating the TLS server context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    /* OpenSSL 3.0 hands the ClientHello callback only the extensions it
     * knows: make encrypted_client_hello (0xfe0d) one of them, so that a
     * ClientHello carrying it can be refused (egress-attacks.md T25). */
    if (SSL_CTX_add_custom_ext(ctx, 0xfe0d, SSL_EXT_CLIENT_HELLO, NULL, NULL, NULL, ech_parse,
                               NULL) != 1) {
        ssl_err(err, "registering the ECH extension");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *tls_client_ctx_new(const char *extra_ca_file, struct cordon_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_err(err, "creating the TLS client context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* The system store; OpenSSL also honours the supervisor's SSL_CERT_FILE
     * and SSL_CERT_DIR here. */
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ssl_err(err, "loading the system's trusted certificates");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (extra_ca_file && SSL_CTX_load_verify_locations(ctx, extra_ca_file, NULL) != 1) {
        ssl_err(err, "network.upstreamCaFile");
        SSL_CTX_free(ctx);
        return NULL;
    }
    static const unsigned char h11[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    SSL_CTX_set_alpn_protos(ctx, h11, sizeof(h11));
    return ctx;
}
