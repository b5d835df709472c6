/* sigv4.c: see sigv4.h. The canonical request follows the AWS documentation
 * ("Create a canonical request for Signature Version 4") and botocore's
 * behaviour, which the proxy checks against the client's own signature. */
#include "sigv4.h"
#include "core/sbuf.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the Authorization value ------------------------------------------------ */

static bool is_hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Copy a field of allowed characters; false when empty, too long or bad. */
static bool field(const char *s, size_t n, char *out, size_t cap, const char *extra)
{
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr(extra, c))
            return false;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static bool parse_credential(const char *s, size_t n, struct sigv4_auth *a)
{
    const char *parts[5] = { NULL };
    size_t lens[5] = { 0 }; /* set for k < 5; zeroed for cppcheck, which cannot tell */
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (k == 5)
                return false;
            parts[k] = s + start;
            lens[k++] = i - start;
            start = i + 1;
        }
    }
    if (k != 5 || lens[4] != 12 || memcmp(parts[4], "aws4_request", 12) != 0)
        return false;
    if (lens[1] != 8)
        return false;
    for (size_t i = 0; i < 8; i++)
        if (!isdigit((unsigned char)parts[1][i]))
            return false;
    return field(parts[0], lens[0], a->akid, sizeof(a->akid), "_") &&
           field(parts[1], 8, a->date, sizeof(a->date), "") &&
           field(parts[2], lens[2], a->region, sizeof(a->region), "-") &&
           field(parts[3], lens[3], a->service, sizeof(a->service), "-_.");
}

static bool parse_signed_headers(const char *s, size_t n, struct sigv4_auth *a)
{
    if (n == 0 || n >= sizeof(a->signed_headers))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ';') {
            if (i == 0 || i == n - 1 || s[i - 1] == ';')
                return false;
        } else if (!(islower((unsigned char)c) || isdigit((unsigned char)c) ||
                     strchr("-_.!#$%&'*+^`|~", c))) {
            return false;
        }
    }
    memcpy(a->signed_headers, s, n);
    a->signed_headers[n] = '\0';
    return true;
}

enum sigv4_kind sigv4_parse_auth(const char *v, size_t n, struct sigv4_auth *out)
{
    memset(out, 0, sizeof(*out));
    static const char hmac_alg[] = "AWS4-HMAC-SHA256";
    static const char ecdsa[] = "AWS4-ECDSA-P256-SHA256";
    size_t hl = sizeof(hmac_alg) - 1, el = sizeof(ecdsa) - 1;
    if (n >= el && memcmp(v, ecdsa, el) == 0 && (n == el || v[el] == ' '))
        return SIGV4_ECDSA;
    if (n < hl || memcmp(v, hmac_alg, hl) != 0)
        return SIGV4_NONE;
    if (n == hl || v[hl] != ' ')
        return SIGV4_MALFORMED;
    size_t i = hl;
    bool have_c = false, have_h = false, have_s = false;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == ','))
            i++;
        if (i == n)
            break;
        size_t ks = i;
        while (i < n && v[i] != '=')
            i++;
        if (i == n)
            return SIGV4_MALFORMED;
        size_t klen = i - ks;
        i++;
        size_t vs = i;
        while (i < n && v[i] != ',' && v[i] != ' ')
            i++;
        const char *val = v + vs;
        size_t vlen = i - vs;
        if (klen == 10 && memcmp(v + ks, "Credential", 10) == 0 && !have_c) {
            if (!parse_credential(val, vlen, out))
                return SIGV4_MALFORMED;
            have_c = true;
        } else if (klen == 13 && memcmp(v + ks, "SignedHeaders", 13) == 0 && !have_h) {
            if (!parse_signed_headers(val, vlen, out))
                return SIGV4_MALFORMED;
            have_h = true;
        } else if (klen == 9 && memcmp(v + ks, "Signature", 9) == 0 && !have_s) {
            if (vlen != 64 || !is_hex_lower(val, 64))
                return SIGV4_MALFORMED;
            memcpy(out->signature, val, 64);
            out->signature[64] = '\0';
            have_s = true;
        } else {
            return SIGV4_MALFORMED;
        }
    }
    return have_c && have_h && have_s ? SIGV4_HMAC : SIGV4_MALFORMED;
}

void sigv4_format_auth(const struct sigv4_auth *a, char *out, size_t n)
{
    snprintf(out, n,
             "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
             "Signature=%s",
             a->akid, a->date, a->region, a->service, a->signed_headers, a->signature);
}

/* ---- hashing ---------------------------------------------------------------- */

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int ml = 0;
    if (EVP_Digest(data, n, md, &ml, EVP_sha256(), NULL) != 1 || ml != 32)
        memset(md, 0, sizeof(md));
    to_hex(md, 32, out);
}

static int hmac(const void *key, size_t kl, const void *data, size_t dl, unsigned char out[32])
{
    size_t ol = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, kl, data, dl, out, 32, &ol) ||
        ol != 32)
        return -1;
    return 0;
}

/* ---- the canonical request --------------------------------------------------- */

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* AWS URI encoding: unreserved A-Z a-z 0-9 - _ . ~ as they are, "/" kept
 * when keep_slash, everything else %XX with upper-case hex. */
static void uri_encode(struct sbuf *b, const char *s, size_t n, bool keep_slash)
{
    static const char hx[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            sb_add(b, (const char *)&c, 1);
        } else {
            char e[3] = { '%', hx[c >> 4], hx[c & 15] };
            sb_add(b, e, 3);
        }
    }
}

/* Percent-decode (a malformed escape stays as it is). */
static char *decode(const char *s, size_t n, size_t *out_len)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 &&
            hexv(s[i + 2]) >= 0) {
            o[k++] = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    *out_len = k;
    return o;
}

/* botocore's remove_dot_segments: ".", "..", and empty segments go. */
static void normalise_path(struct sbuf *out, const char *p, size_t n)
{
    const char *segs[512];
    size_t lens[512];
    size_t ns = 0;
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && p[i] != '/')
            i++;
        size_t l = i - s;
        if (l == 0 || (l == 1 && p[s] == '.')) {
            /* skip */
        } else if (l == 2 && p[s] == '.' && p[s + 1] == '.') {
            if (ns)
                ns--;
        } else if (ns < 512) {
            segs[ns] = p + s;
            lens[ns++] = l;
        } else {
            out->oom = true;
            return;
        }
        i++;
    }
    sb_str(out, "/");
    for (size_t k = 0; k < ns; k++) {
        if (k)
            sb_str(out, "/");
        sb_add(out, segs[k], lens[k]);
    }
    if (ns && n && p[n - 1] == '/')
        sb_str(out, "/");
}

struct qparam {
    char *k, *v; /* encoded */
};

static int cmp_param(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static int canonical_query(struct sbuf *out, const char *q, size_t n)
{
    if (n == 0)
        return 0;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += q[i] == '&';
    struct qparam *ps = calloc(cap, sizeof(*ps));
    if (!ps)
        return -1;
    size_t np = 0, i = 0;
    int r = 0;
    while (i <= n && r == 0) {
        size_t s = i;
        while (i < n && q[i] != '&')
            i++;
        if (i > s) {
            const char *eq = memchr(q + s, '=', i - s);
            size_t kl = eq ? (size_t)(eq - (q + s)) : i - s;
            size_t dl;
            char *dk = decode(q + s, kl, &dl);
            struct sbuf kb = { 0 }, vb = { 0 };
            if (dk)
                uri_encode(&kb, dk, dl, false);
            free(dk);
            char *dv = eq ? decode(eq + 1, (size_t)((q + i) - (eq + 1)), &dl) : strdup("");
            if (dv)
                uri_encode(&vb, dv, eq ? dl : 0, false);
            free(dv);
            if (!kb.p)
                sb_str(&kb, "");
            if (!vb.p)
                sb_str(&vb, "");
            if (kb.oom || vb.oom || !dv) {
                free(kb.p);
                free(vb.p);
                r = -1;
                break;
            }
            ps[np].k = kb.p;
            ps[np++].v = vb.p;
        }
        i++;
    }
    if (r == 0) {
        qsort(ps, np, sizeof(*ps), cmp_param);
        for (size_t k = 0; k < np; k++) {
            if (k)
                sb_str(out, "&");
            sb_str(out, ps[k].k);
            sb_str(out, "=");
            sb_str(out, ps[k].v);
        }
    }
    for (size_t k = 0; k < np; k++) {
        free(ps[k].k);
        free(ps[k].v);
    }
    free(ps);
    return r;
}

/* "name:value\n" for one signed header: every field of that name, values
 * trimmed, inner runs of spaces collapsed, joined with ",". */
static int canonical_header(struct sbuf *out, const struct sigv4_request *req, const char *name,
                            size_t nl)
{
    bool found = false;
    sb_add(out, name, nl);
    sb_str(out, ":");
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sigv4_header *h = &req->headers[i];
        if (h->name_len != nl || strncasecmp(h->name, name, nl) != 0)
            continue;
        if (found)
            sb_str(out, ",");
        found = true;
        const char *v = h->value;
        size_t vl = h->value_len;
        while (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        bool space = false;
        for (size_t k = 0; k < vl; k++) {
            if (v[k] == ' ' || v[k] == '\t') {
                space = true;
                continue;
            }
            if (space)
                sb_str(out, " ");
            space = false;
            sb_add(out, v + k, 1);
        }
    }
    sb_str(out, "\n");
    return found ? 0 : -1;
}

static char *canonical_request(const struct sigv4_request *req, const struct sigv4_auth *a,
                               enum sigv4_uri uri)
{
    struct sbuf b = { 0 };
    sb_str(&b, req->method);
    sb_str(&b, "\n");
    const char *t = req->target;
    const char *qm = strchr(t, '?');
    size_t pl = qm ? (size_t)(qm - t) : strlen(t);
    if (uri == SIGV4_URI_AS_SENT) {
        sb_add(&b, t, pl);
    } else {
        struct sbuf norm = { 0 };
        normalise_path(&norm, t, pl);
        if (norm.oom || !norm.p) {
            free(norm.p);
            free(b.p);
            return NULL;
        }
        uri_encode(&b, norm.p, norm.n, true);
        free(norm.p);
    }
    sb_str(&b, "\n");
    if (qm && canonical_query(&b, qm + 1, strlen(qm + 1)) < 0) {
        free(b.p);
        return NULL;
    }
    sb_str(&b, "\n");
    const char *sh = a->signed_headers;
    while (*sh) {
        size_t nl = strcspn(sh, ";");
        if (canonical_header(&b, req, sh, nl) < 0) {
            free(b.p);
            return NULL;
        }
        sh += nl;
        if (*sh == ';')
            sh++;
    }
    sb_str(&b, "\n");
    sb_str(&b, a->signed_headers);
    sb_str(&b, "\n");
    sb_str(&b, req->payload_hash);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_auth *a, enum sigv4_uri uri,
               const char *secret, size_t secret_len, char sig[65])
{
    if (!req->amz_date || strlen(req->amz_date) != 16 || strncmp(req->amz_date, a->date, 8) != 0)
        return -1;
    char *cr = canonical_request(req, a, uri);
    if (!cr)
        return -1;
    char crh[65];
    sigv4_sha256_hex(cr, strlen(cr), crh);
    free(cr);
    char sts[512];
    int sl = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                      req->amz_date, a->date, a->region, a->service, crh);
    if (sl < 0 || (size_t)sl >= sizeof(sts))
        return -1;
    unsigned char k[32], k2[32];
    char *key = malloc(secret_len + 5);
    if (!key)
        return -1;
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): HMAC key bytes, not a string */
    memcpy(key, "AWS4", 4);
    memcpy(key + 4, secret, secret_len);
    int r = hmac(key, secret_len + 4, a->date, strlen(a->date), k);
    explicit_bzero(key, secret_len + 4);
    free(key);
    r |= hmac(k, 32, a->region, strlen(a->region), k2);
    r |= hmac(k2, 32, a->service, strlen(a->service), k);
    r |= hmac(k, 32, "aws4_request", 12, k2);
    r |= hmac(k2, 32, sts, (size_t)sl, k);
    if (r == 0)
        to_hex(k, 32, sig);
    explicit_bzero(k, sizeof(k));
    explicit_bzero(k2, sizeof(k2));
    return r == 0 ? 0 : -1;
}

bool sigv4_query_presigned(const char *target)
{
    const char *q = strchr(target, '?');
    if (!q)
        return false;
    for (const char *p = q + 1; *p;) {
        size_t l = strcspn(p, "&");
        if ((l >= 16 && strncasecmp(p, "X-Amz-Signature=", 16) == 0) ||
            (l >= 17 && strncasecmp(p, "X-Amz-Credential=", 17) == 0) ||
            (l >= 16 && strncasecmp(p, "X-Amz-Algorithm=", 16) == 0) ||
            (l >= 15 && strncasecmp(p, "AWSAccessKeyId=", 15) == 0)) /* SigV2 */
            return true;
        p += l;
        if (*p == '&')
            p++;
    }
    return false;
}
