/* hello.c: see hello.h. */
#include "hello.h"

#include <limits.h>
#include <openssl/err.h>
#include <string.h>

bool tls_sni_parse(const unsigned char *p, size_t len, char *out, size_t n)
{
    if (len < 5)
        return false;
    size_t list = ((size_t)p[0] << 8) | p[1];
    if (list + 2 != len || p[2] != 0)
        return false;
    size_t nl = ((size_t)p[3] << 8) | p[4];
    if (nl == 0 || nl + 5 > len || nl >= n)
        return false;
    for (size_t i = 0; i < nl; i++)
        if (p[5 + i] <= 0x20 || p[5 + i] >= 0x7f)
            return false;
    memcpy(out, p + 5, nl);
    out[nl] = '\0';
    return true;
}

bool tls_sni_of(SSL *s, char *out, size_t n)
{
    const unsigned char *p;
    size_t len;
    if (!SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &p, &len))
        return false;
    return tls_sni_parse(p, len, out, n);
}

static int ech_parse(SSL *s, unsigned int ext_type, unsigned int context,
                     const unsigned char *in, size_t inlen, X509 *x, size_t chainidx, int *al,
                     void *parse_arg)
{
    (void)s, (void)ext_type, (void)context, (void)in, (void)inlen, (void)x, (void)chainidx;
    (void)parse_arg;
    /* The client hello callback runs first and stops; should a handshake
     * ever get here, refuse ECH too (as tls.c's server context does). */
    *al = SSL_AD_ACCESS_DENIED;
    return 0;
}

int tls_hello_see_ech(SSL_CTX *ctx)
{
    /* An OpenSSL that does not implement ECH (3.0 among them) drops the
     * extensions it does not know while it reads a ClientHello:
     * SSL_client_hello_get0_ext(0xfe0d) then answers "absent" even when ECH
     * is there (found by fuzz_hello's differential check: the transparent
     * capture's sniffing context let ECH through). A custom extension of that
     * type is collected like a known one. Where OpenSSL knows ECH itself, it
     * is collected already and adding it would fail. */
    if (SSL_extension_supported(TLS_EXT_ECH))
        return 0;
    return SSL_CTX_add_custom_ext(ctx, TLS_EXT_ECH, SSL_EXT_CLIENT_HELLO, NULL, NULL, NULL,
                                  ech_parse, NULL) == 1 ? 0 : -1;
}

/* Called by OpenSSL once a whole ClientHello is parsed: note what it says,
 * and stop (this SSL never answers). */
static int hello_cb(SSL *s, int *al, void *arg)
{
    (void)arg;
    struct tls_hello *r = SSL_get_app_data(s);
    const unsigned char *ext;
    size_t extlen;
    r->ech = SSL_client_hello_get0_ext(s, TLS_EXT_ECH, &ext, &extlen) == 1;
    r->has_sni = SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &ext, &extlen) == 1;
    if (r->has_sni && !tls_sni_parse(ext, extlen, r->sni, sizeof(r->sni))) {
        r->bad_sni = true;
        r->sni[0] = '\0';
    }
    SSL_set_app_data(s, NULL); /* seen */
    *al = SSL_AD_HANDSHAKE_FAILURE;
    return SSL_CLIENT_HELLO_ERROR;
}

int tls_hello_read(SSL_CTX **ctx, const void *buf, size_t len, struct tls_hello *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return 0;
    if (((const unsigned char *)buf)[0] != 0x16 || len > INT_MAX)
        return -1; /* not a handshake record (RFC 8446 5.1) */
    if (!*ctx) {
        *ctx = SSL_CTX_new(TLS_server_method());
        if (!*ctx)
            return -1;
        if (tls_hello_see_ech(*ctx) < 0) {
            SSL_CTX_free(*ctx);
            *ctx = NULL;
            return -1;
        }
        SSL_CTX_set_client_hello_cb(*ctx, hello_cb, NULL);
    }
    SSL *s = SSL_new(*ctx);
    BIO *rb = BIO_new_mem_buf(buf, (int)len), *wb = BIO_new(BIO_s_mem());
    if (!s || !rb || !wb) {
        SSL_free(s);
        BIO_free(rb);
        BIO_free(wb);
        return -1;
    }
    BIO_set_mem_eof_return(rb, -1); /* the end of the bytes so far: "retry", not EOF */
    SSL_set_bio(s, rb, wb);
    SSL_set_app_data(s, out);
    SSL_set_accept_state(s);
    ERR_clear_error();
    int k = SSL_do_handshake(s);
    int e = SSL_get_error(s, k);
    bool seen = SSL_get_app_data(s) == NULL;
    SSL_free(s);
    ERR_clear_error();
    if (seen)
        return 1;
    memset(out, 0, sizeof(*out));
    return e == SSL_ERROR_WANT_READ ? 0 : -1;
}
