/* policy.h: the typed policy that settings JSON is loaded into.
 *
 * Owns: struct cordon_policy and its lists. Every path in it is absolute and
 * lexically normalised (no ".", "..", "//" or trailing "/"), with `~` and
 * relative paths already expanded; symlinks are resolved later, when the
 * mount plan is made, because they can change between load and run.
 */
#ifndef CORDON_POLICY_H
#define CORDON_POLICY_H

#include "cordon.h"
#include "netrule.h"
#include "reqrule.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct cordon_pathrule {
    char *path;    /* absolute, normalised */
    char *as_written;
    bool literal;  /* {"path": ..., "literal": true}: never a pattern */
    bool glob;     /* a gitignore-style pattern, expanded when a run starts */
};

struct cordon_pathlist {
    struct cordon_pathrule *v;
    size_t n, cap;
};

struct cordon_strlist {
    char **v;
    size_t n, cap;
};

/* credentials.envVars[] and credentials.files[] (srt-compat.md 1.3). The
 * values are read when a run starts (tls/creds.c), never here. */
enum cred_no_match {
    CRED_NOMATCH_ERROR, /* refuse to run (cordon's default) */
    CRED_NOMATCH_WARN,  /* leave the value unmasked, with a warning (srt's default) */
    CRED_NOMATCH_DENY,  /* treat it as mode "deny" */
};

struct cred_spec {
    bool is_file;
    char *name;                 /* envVars: the variable */
    char *path;                 /* files: absolute, normalised */
    char *label;                /* "credentials.envVars[0] (NAME)", for messages */
    bool mask;                  /* false: mode "deny" */
    char *extract;              /* a PCRE2 pattern with a capture group, or NULL */
    enum cred_no_match on_no_match;
    bool jwt;                   /* decode: "jwt" */
    struct cordon_strlist mask_claims;
    bool mask_duplicates;
    struct net_entry *inject_hosts; /* explicit injectHosts, or a copy of allowedDomains */
    size_t ninject_hosts;
    bool inject_hosts_set;      /* given explicitly */
};

/* network.injectHeaders[]: the value is a template with ${env:NAME} and
 * ${file:PATH}, expanded on the host when a run starts. */
struct inject_header {
    struct net_entry host;
    char *header;
    char *value;                /* the template, as written */
};

/* At most this many entries in network.hostPorts and in network.publishPorts. */
#define CORDON_MAX_LOCAL_PORTS 64

struct cordon_policy {
    enum cordon_policy_source source;
    char *source_path;  /* NULL for the embedded default */
    char *home;
    char *cwd;

    struct {
        bool disabled;
        struct cordon_pathlist deny_read, allow_read, allow_write, deny_write;
        bool allow_git_config;
    } fs;

    struct {
        struct cordon_strlist allowed_domains;
        struct cordon_strlist denied_domains;
        struct net_rules rules;         /* parsed allowed/denied entries, default ports */
        bool default_ports_set;
        bool allow_private;             /* network.allowPrivateAddresses */
        json_t *hosts;                  /* network.hosts: canonical name -> address */
        struct cordon_strlist dns_servers;
        json_t *denied_domain_reasons;  /* object entry -> reason, or NULL */
        struct net_cidr *denied_resolved; /* deniedResolvedAddresses */
        size_t ndenied_resolved;
        /* parentProxy; when absent, the supervisor's own HTTP_PROXY,
         * HTTPS_PROXY and NO_PROXY apply at run time (as srt does). */
        bool parent_set;
        char *parent_http, *parent_https, *parent_no_proxy; /* as written */
        /* mitmProxy */
        char *mitm_socket;
        struct net_entry *mitm_domains;
        size_t nmitm_domains;
        uint16_t http_proxy_port, socks_proxy_port; /* external proxies; 0: none */
        /* TLS interception (srt's tlsTerminate) */
        bool tls;
        char *tls_ca_cert, *tls_ca_key;  /* both or neither: the user's CA */
        struct net_entry *tls_exclude;
        size_t ntls_exclude;
        struct cordon_strlist tls_extra_ca;
        int tls_max_tunnels;             /* default 256 */
        int tls_handshake_timeout_ms;    /* default 10000 */
        char *upstream_ca_file;          /* network.upstreamCaFile */
        bool require_host_match;         /* default true */
        bool transparent;                /* network.transparent: DNS and capture, default true */
        bool refuse_opaque_tunnels;
        struct cordon_strlist strip_response_headers; /* folded names */
        /* request rules (network.requestRules) */
        struct req_rule *req_rules;
        size_t nreq_rules;
        int path_mode;                   /* enum path_mode (ambiguousRequestTarget) */
        bool allow_plaintext_header_set; /* allowPlaintextHeaderSet */
        /* credentials on the wire */
        struct inject_header *inject_headers;
        size_t ninject_headers;
        struct cordon_strlist strip_request_headers; /* folded names */
        bool strict_allowlist;
        bool allow_all_unix_sockets;
        bool allow_local_binding;  /* accepted; the sandbox has its own loopback */
        /* network.allowUnixSockets: absolute, normalised (symlinks are
         * resolved when a run starts); see sandbox/unixsock.h */
        struct cordon_strlist unix_sockets;
        /* network.hostPorts and network.publishPorts (sandbox/ports.h) */
        uint16_t host_ports[CORDON_MAX_LOCAL_PORTS];
        size_t nhost_ports;
        uint16_t publish_ports[CORDON_MAX_LOCAL_PORTS];
        size_t npublish_ports;
    } net;

    struct {
        struct cred_spec *v;
        size_t n;
        bool allow_plaintext_inject;
        /* credentials.awsPairs (and the standard trio, paired automatically) */
        struct aws_pair {
            char *akid_var, *secret_var, *token_var; /* token_var may be NULL */
            bool automatic;
        } *aws;
        size_t naws;
        /* credentials.sigv4: pass these request shapes through unchanged
         * (the fake signature reaches AWS) instead of refusing them */
        bool sigv4_streaming, sigv4_presigned, sigv4a;
    } creds;

    bool allow_nested_userns;
    int mandatory_deny_search_depth;

    /* `limits`: soft = hard = value; unset means inherited (nproc defaults
     * to CORDON_DEFAULT_NPROC). 0 in value with set=true never happens. */
    struct {
        bool set;
        unsigned long long value;
    } limits[5]; /* indexed by LIM_* of harden/harden.h */

    /* `environment`: fnmatch(3) patterns of variable names. drop always
     * holds "LD_*" first; keep wins over drop. */
    struct cordon_strlist env_drop, env_keep;
    struct cordon_strlist git_safe_directories;
    json_t *ignore_violations;  /* object, or NULL */

    /* Keys that were accepted and ignored (other platforms, srt plumbing):
     * one line each, shown under --debug. */
    struct cordon_strlist notes;
};

int cordon_pathlist_add(struct cordon_pathlist *l, const char *path, const char *as_written,
                        bool literal);

/* Glob patterns (glob.c). */
bool cordon_path_has_glob(const char *s);
size_t cordon_glob_base_len(const char *pattern);
int cordon_glob_expand(const char *pattern, int (*cb)(void *ud, const char *path), void *ud,
                       struct cordon_error *err);
void cordon_pathlist_clear(struct cordon_pathlist *l);
int cordon_strlist_add(struct cordon_strlist *l, const char *s);
void cordon_strlist_clear(struct cordon_strlist *l);

/* Expand `~`, make relative paths absolute against cwd and normalise
 * lexically. Returns a new string, or NULL with err filled. */
char *cordon_path_expand(const char *in, const char *home, const char *cwd,
                         struct cordon_error *err);

/* Lexically normalise an absolute path in place. */
void cordon_path_normalize(char *path);

/* True when a is b or an ancestor of b (both normalised absolute paths). */
bool cordon_path_is_prefix(const char *a, const char *b);

/* Embedded default settings, as JSON text. */
extern const char cordon_default_settings[];

#endif
