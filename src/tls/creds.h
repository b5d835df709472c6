/* creds.h: credentials that never enter the sandbox (srt's `credentials`
 * keys and cordon's network.injectHeaders).
 *
 * When a run starts, the supervisor reads each masked variable and file on
 * the host, replaces every secret span with a sentinel (or a fake JWT), and
 * keeps the real value in memory that is never dumped, is wiped when freed,
 * and reads as zeros in any child process (MADV_DONTDUMP, MADV_WIPEONFORK,
 * mlock where the limit allows). The sandbox sees only the fakes: in its
 * environment, and in masked files bound over the real ones. The proxy puts
 * the real value back on the wire, only toward the secret's own hosts.
 *
 * Real values never appear in messages: errors name the setting
 * (credentials.envVars[0] (NAME)), never the value.
 */
#ifndef CORDON_CREDS_H
#define CORDON_CREDS_H

#include "cordon.h"
#include "policy/policy.h"
#include "proxy/subst.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One secret: a fake the sandbox holds and the real value it stands for. */
struct cred_secret {
    char *real;          /* secure memory */
    size_t real_len;
    char *fake;          /* a sentinel or a fake JWT (ordinary memory) */
    size_t fake_len;
    const struct net_entry *hosts; /* injectHosts (borrowed from the policy) */
    size_t nhosts;
    bool explicit_hosts; /* injectHosts was given (not allowedDomains by default) */
    const char *label;   /* "credentials.envVars[0] (NAME)" (borrowed) */
};

/* A value read for an injected header (${env:..} or ${file:..}), and the
 * stand-in that replaces it if a response echoes it. */
struct cred_piece {
    char *real;          /* secure memory */
    size_t real_len;
    char *fake;          /* a sentinel */
    size_t fake_len;
};

/* One header set toward a host (network.injectHeaders). */
struct cred_header {
    const struct net_entry *host; /* borrowed */
    const char *name;             /* borrowed */
    char *value;                  /* expanded, secure memory */
    size_t value_len;
    struct cred_piece *pieces;
    size_t npieces;
    char label[48];               /* "network.injectHeaders[0]" */
};

/* A file the sandbox sees in place of a masked one. */
struct cred_file {
    char *path;          /* the real path (symlinks resolved) */
    char *content;       /* the fake content (ordinary memory) */
    size_t len;
    dev_t dev;           /* identity of the real file when it was read */
    ino_t ino;
    bool deny;           /* hide it instead (onExtractNoMatch "deny", ${file:} sources) */
};

/* An AWS key pair whose requests the proxy signs again (credentials.awsPairs
 * or the standard trio): indices into secrets, token -1 when none. */
struct cred_aws {
    long akid, secret, token;
};

struct cred_store {
    struct cred_secret *secrets;
    size_t nsecrets;
    struct cred_aws *aws;
    size_t naws;
    bool sigv4_streaming, sigv4_presigned, sigv4a; /* passthrough instead of 403 */
    struct cred_header *headers;
    size_t nheaders;
    char **env_set;      /* "NAME=fake" for masked variables */
    size_t nenv_set;
    char **env_unset;    /* names removed from the sandbox's environment */
    size_t nenv_unset;
    struct cred_file *files;
    size_t nfiles;
};

/* Read and mask every credential of p. envp is the caller's environment.
 * log receives warnings (onExtractNoMatch "warn"). Returns 0 with *out
 * (NULL when p has no credentials) or a negative errno with err set. */
int creds_prepare(const cordon_policy *p, char *const *envp, cordon_log_fn log, void *log_ud,
                  struct cred_store **out, struct cordon_error *err);
void creds_free(struct cred_store *s);

/* Memory for secrets: never in a core dump, zero in children, wiped on free. */
void *secmem_alloc(size_t n);
void secmem_free(void *p);

/* A sentinel of at least min(len, 24) bytes and exactly len bytes when len
 * is 24 or more: "fake_value_" and random [a-z0-9]. Returns malloc'ed text. */
char *creds_sentinel(size_t len);

/* Is s (len bytes) a JWT: three base64url parts, a JSON header with "alg"? */
bool creds_is_jwt(const char *s, size_t len);

#endif
