/* decider.h: the external decider of `cordon proxy` (srt's decider protocol,
 * shared/reference/srt-compat.md 3.13, as srt 0.0.83 speaks it).
 *
 * Owns: the frame codec (a 4-byte big-endian length, then one UTF-8 JSON
 * object whose "t" names the message), the strict parsing of what the
 * decider sends, the link (its fds, a read and a write buffer, on the
 * proxy's libuv loop), the host lists of the decider's hello, and the
 * per-request exchange (req, verdict, need_body, body) with its limits and
 * timer.
 *
 *   proxy   -> decider  {"t":"hello","proto":1}
 *   decider -> proxy    {"t":"hello","proto":1,"allowedDomains":[...],"deniedDomains":[...]}
 *   proxy   -> decider  {"t":"req","id",...}   decider -> proxy {"t":"verdict","id",...}
 *   proxy   -> decider  {"t":"body","id","data":"<base64>","cut"?:true}  (after need_body)
 *
 * Invariants:
 *  - fail closed: a request is forwarded only after a well-formed allow for
 *    its id arrived in time; nothing is dialled before that (the proxy asks
 *    before it resolves or connects);
 *  - any protocol violation, in either direction, kills the link: every
 *    pending and later request is refused (503 decider_unavailable) and
 *    on_dead fires once; the proxy then stops;
 *  - what is parsed is bounded: frames of at most 1 MiB are read (a longer
 *    length kills the link before anything is buffered), and a request the
 *    frame cannot carry within the protocol's limits is refused (400) here,
 *    never sent;
 *  - the decider's answer is never trusted to be well-formed: every field is
 *    checked against srt's schema (strict objects, no nulls, no duplicate
 *    keys, no empty optional fields, lower-case token header names, no
 *    control characters) before it has any effect.
 */
#ifndef CORDON_DECIDER_H
#define CORDON_DECIDER_H

#include "cordon.h"
#include "policy/netrule.h"
#include "proxy/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define DECIDER_PROTO 1
#define DECIDER_MAX_FRAME (1u << 20)       /* what either end reads */
#define DECIDER_MAX_BODY (32u << 20)       /* need_body's largest max */
#define DECIDER_MAX_HELD (2u * DECIDER_MAX_BODY) /* bodies held at once, all requests */
#define DECIDER_MAX_HEADER_VALUES 190
#define DECIDER_MAX_HEADER_BYTES (64u << 10)
#define DECIDER_MAX_HOST_PATH (8u << 10)
#define DECIDER_MAX_REASON (1u << 10)
#define DECIDER_MAX_CREDENTIAL 8192
#define DECIDER_MAX_ID 9007199254740991ull /* 2^53 - 1 */
#define DECIDER_ID_WINDOW 4096
#define DECIDER_TIMEOUT_MS 5000

/* ---- frames (pure functions; fuzz/fuzz_decider.c) ------------------------ */

enum dv_action { DV_ALLOW, DV_DENY, DV_NEED_BODY };

/* One header of an allow's setHeaders (its values in order; none: the
 * header is only removed). Names are lower-case tokens. */
struct dv_set {
    char *name;
    char **values;
    size_t nvalues;
};

/* A parsed verdict. Strings are owned (dv_verdict_clear). */
struct dv_verdict {
    uint64_t id;
    enum dv_action action;
    /* allow */
    struct dv_set *sets;
    size_t nsets;
    char **removes;
    size_t nremoves;
    char *cred, *credential; /* both or neither */
    size_t cred_len;         /* cred may hold a NUL (any JSON string) */
    /* deny */
    int status;
    char *reason;           /* NULL: none given */
    /* need_body */
    uint32_t max;
};
void dv_verdict_clear(struct dv_verdict *v);

/* A parsed hello: the decider's allowedDomains and deniedDomains. */
struct dv_hello {
    struct net_entry *allow, *deny;
    size_t nallow, ndeny;
};
void dv_hello_clear(struct dv_hello *h);

/* Parse one frame's payload (the bytes after its length): the decider's
 * hello when hello is true, else a verdict. Returns 0, or -1 with *why one
 * of srt's reasons ("frame is not UTF-8", "frame is not valid JSON", "frame
 * is not one JSON object", "null in frame", "lone surrogate in frame",
 * "duplicate key in frame", "bad hello", "bad verdict frame"). */
int dv_parse_hello(const uint8_t *p, size_t n, struct dv_hello *out, const char **why);
int dv_parse_verdict(const uint8_t *p, size_t n, struct dv_verdict *out, const char **why);

/* The fields of a req frame, as srt builds them from a request. */
struct dv_reqinfo {
    const struct http_request *q;
    const char *head;          /* the request's head (q points into it) */
    const struct net_target *target; /* the destination (canonical host, port) */
    bool tls;                  /* inside a terminated tunnel (else plain HTTP) */
    const char *sni;           /* the client's server name, or NULL */
};

/* Build the payload of {"t":"req","id":id,...} (the JSON srt's
 * JSON.stringify gives, byte for byte) into *out (malloc'ed, *outlen bytes).
 * Returns 0; 1 when the request cannot be asked about, with *why one of
 * srt's 400 reasons; -1 when out of memory. */
int dv_req_frame(const struct dv_reqinfo *r, uint64_t id, char **out, size_t *outlen,
                 const char **why);

/* Does a hello entry (its net_entry as dv_parse_hello made it) cover host t
 * on port t->port? srt's matching: an entry without a port covers every
 * port; names compare exactly, "*.x" covers strict subdomains of x. */
bool dv_entry_match(const struct net_entry *e, const struct net_target *t);

/* ---- the link ------------------------------------------------------------ */

struct decider;
struct dv_conn;

struct decider_opts {
    uv_loop_t *loop;
    int in_fd, out_fd;         /* the same fd for a socket; both are taken */
    unsigned timeout_ms;       /* per verdict; 0: DECIDER_TIMEOUT_MS */
    bool plaintext_header_set; /* --plaintext-header-set */
    /* The hello arrived (the lists are in place) */
    void (*on_hello)(void *ud);
    /* The link is dead: why as srt words it; violation when the decider
     * broke the protocol (or the link failed) rather than ending its stream. */
    void (*on_dead)(void *ud, const char *why, bool violation);
    void *ud;
};

int decider_new(const struct decider_opts *o, struct decider **out, struct cordon_error *err);
/* End the link (the proxy is stopping): pending and later requests are
 * refused (503, "request decider: closed"); on_dead does not fire. */
void decider_stop(struct decider *d);
/* Free it, after every dv_conn (decider_conn_free): the fds are closed; d
 * itself goes once libuv has released its handles. */
void decider_free(struct decider *d);

/* The hello's lists as net_rules (for the resolved-address guard's deny
 * entries); valid from on_hello until decider_free. */
const struct net_rules *decider_rules(const struct decider *d);

/* The host-level verdict from the hello's lists: deniedDomains first, then
 * allowedDomains, else "host is not on the allow list". */
struct net_verdict decider_host(const struct decider *d, const struct net_target *t);

/* srt: a name is spelled in plain ASCII (letters, digits, "-" in dot-separated
 * labels, one trailing dot at most), or is an IP literal. Anything else is
 * refused (400 bad_request) before the lists are looked at. */
bool decider_host_ascii(const char *host, bool ipv6);

/* srt's resolved-address exemption for loopback names: a target named
 * "localhost" or under ".localhost" may resolve to loopback and to nothing
 * else. Returns -1 when t is not such a name, 0 when the address (4 or 16
 * bytes) is loopback, 1 (with *why) otherwise. */
int decider_loopback_name(const struct net_target *t, int family, const uint8_t *addr,
                          const char **why);

/* ---- a request ----------------------------------------------------------- */

enum dv_result {
    DV_GO,      /* allowed: forward it with decider_drops_header/decider_set_lines */
    DV_WAIT,    /* asked, or reading the body: the proxy waits for wake() */
    DV_REFUSE,  /* answer the client with *ans */
};

struct dv_answer {
    int status;
    const char *code;   /* X-Deny-Reason */
    const char *reason; /* the body, and the audit record's reason */
    const char *rule;   /* "decider" when the decider decided, else NULL */
    size_t cap;         /* DV_WAIT: read the client's bytes up to this many (0: none) */
    bool send_continue; /* DV_WAIT: the body is awaited, and the client waits for a
                           100 Continue before it sends it (as Node's server answers) */
};

/* The request whose head is r->head[0..headlen), followed by avail bytes of
 * its body (eof: the client sent no more). Called again, with the same head,
 * after every wake(owner) and whenever more body bytes arrived; *slot holds
 * this connection's state (NULL at first; free with decider_conn_free). */
enum dv_result decider_request(struct decider *d, struct dv_conn **slot,
                               const struct dv_reqinfo *r, size_t headlen, size_t avail,
                               bool eof, void (*wake)(void *owner), void *owner,
                               struct dv_answer *ans);

/* After DV_GO: does the allow remove this header (removeHeaders, the names
 * it sets, and with a credential every credential header; names compare
 * case-insensitively with "-", "_" and "." as one)? */
bool decider_drops_header(const struct dv_conn *dc, const char *name, size_t len);
/* After DV_GO: the header lines the allow adds ("name: value\r\n"...). */
const char *decider_set_lines(const struct dv_conn *dc, size_t *len);
/* The request was forwarded (or abandoned): the connection's next request
 * is asked about afresh. Returns whether the decider had allowed it. */
bool decider_request_done(struct dv_conn *dc);
/* The connection is gone: a verdict still to come for it is dropped. */
void decider_conn_free(struct dv_conn *dc);

/* The X-Deny-Reason code for one of the proxy's refusal tags
 * ("blocked-by-allowlist" -> "host_not_allowed", ...), the code itself for
 * srt's codes, NULL for answers srt gives no code (upstream failures). */
const char *decider_deny_code(const char *errtag);

/* The reason phrase of a status a verdict may give (400 to 599). */
const char *decider_status_phrase(int status);

#endif
