/* run.c: the supervisor side of one sandboxed run.
 *
 * Owns: cordon_run(): plan, clone(2) of init into the new namespaces, the id
 * maps, the sync protocol, the event loop that serves the egress proxy on
 * the listeners init passes out, signal relay, the audit records of the run,
 * and mapping init's report to the command's exit status.
 * Invariants:
 *  - clone happens before any thread exists (the caller's promise) and the
 *    child only executes the precomputed plan;
 *  - a failure anywhere before exec is reported as an error and the command
 *    never runs; a sandbox that ends without a report is an error, never a
 *    success;
 *  - the proxy serves only listeners that live in the sandbox's network
 *    namespace; if it cannot serve, the sandbox has no network at all.
 */
#include "sandbox.h"
#include "tls/creds.h"
#include "protect.h"
#include "observe.h"
#include "ports.h"
#include "unixsock.h"
#include "audit/audit.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "core/escape.h"
#include "net/dns.h"
#include "net/resolver.h"
#include "net/synth.h"
#include "policy/update.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

static const int relayed[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

struct run {
    const cordon_policy *policy;
    const struct cordon_run_opts *opts;
    struct cordon_error *err;
    uv_loop_t loop;
    uv_poll_t sync_poll, sig_poll;
    bool sig_active, sync_active;
    int sync_fd, sfd;
    pid_t pid;
    int r;
    bool have_exit, have_error;
    int exit_ws;
    struct audit audit;
    struct resolver *resolver;
    struct proxy *proxy;
    struct net_noproxy no_proxy;
    struct tls_ca *ca;
    SSL_CTX *tls_server, *tls_client;
    struct cred_store *creds;
    struct synth_map *synth;  /* network.transparent: names behind synthetic addresses */
    struct dns_server *dns;
    bool have_capture_nl;     /* capture_nl: NETLINK_ROUTE in the sandbox's namespace */
    int capture_nl;
    const struct net_rules *routed; /* the rules whose addresses have local routes */
    const struct sandbox_plan *plan;
    const struct protect_set *prot;
    struct observer *observer;
    struct ports *ports;         /* network.hostPorts, publishPorts (ports.h) */
    struct unixsock *unix_conn;  /* network.allowUnixSockets (unixsock.h) */
    /* --control-fd: settings documents, one per line, whose network rules
     * replace the live ones (srt's live-update protocol) */
    const cordon_policy *live;   /* the policy whose network rules are in force */
    cordon_policy **updates;     /* every accepted update, kept until the end */
    size_t nupdates;
    uv_poll_t ctl_poll;
    bool ctl_active;
    int ctl_fd;
    char *ctl_buf;
    size_t ctl_len;
    unsigned ctl_line;
    bool ctl_file;               /* a regular file: read whole, applied at the start */
    uv_timer_t ctl_timer;        /* SIGKILL 2 s after an early end of the channel */
    bool ctl_timer_active;
};

static int write_proc(pid_t pid, const char *name, const char *s)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = strlen(s);
    ssize_t w = write(fd, s, n);
    if (w < 0)
        return -errno;
    return (size_t)w == n ? 0 : -EIO;
}

static int write_maps(pid_t pid, uid_t uid, gid_t gid, struct cordon_error *err)
{
    char map[64];
    int r = write_proc(pid, "setgroups", "deny");
    if (r < 0)
        return cordon_err_sys(err, -r, "cannot write setgroups of the sandbox");
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
    r = write_proc(pid, "uid_map", map);
    if (r < 0)
        return cordon_err_sys(err, -r, "cannot write the sandbox's uid map");
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
    r = write_proc(pid, "gid_map", map);
    if (r < 0)
        return cordon_err_sys(err, -r, "cannot write the sandbox's gid map");
    return 0;
}

static void log_line(const struct cordon_run_opts *o, enum cordon_log_level lv, const char *line)
{
    if (o->log)
        o->log(o->log_userdata, lv, line);
}

/* ---- transparent capture ----------------------------------------------------- */

/* The rules changed while the command runs (--control-fd): the sandbox's DNS
 * answers by the new ones, and the local routes of allowed addresses follow
 * them (capture.h), so an address added is captured from now on and one
 * removed is unreachable again. */
static void capture_rules_changed(struct run *run, const struct net_rules *rules)
{
    if (run->dns)
        dns_server_set_rules(run->dns, rules);
    if (!run->have_capture_nl || !run->routed)
        return;
    struct cordon_error e = { 0 };
    if (capture_update_routes(run->capture_nl, run->routed, rules, &e) < 0) {
        char line[1300];
        snprintf(line, sizeof(line), "transparent capture: the addresses of the new rules: %s",
                 e.msg);
        log_line(run->opts, CORDON_LOG_WARN, line);
    }
    run->routed = rules;
}

/* ---- live updates (--control-fd) ------------------------------------------- */

/* One line of --control-fd: read (policy/update.h), then logged, recorded,
 * and applied when it is a valid update of the live keys. */
static void control_line(struct run *run, char *line)
{
    unsigned no = ++run->ctl_line;
    char name[64], msg[1400], why[1024];
    snprintf(name, sizeof(name), "control line %u", no);
    struct cordon_load_opts lo = { .home = run->policy->home, .cwd = run->policy->cwd };
    cordon_policy *np = NULL;
    switch (policy_update_parse(run->live, line, name, &lo, &np, why, sizeof(why))) {
    case POLICY_UPDATE_EMPTY:
        return;
    case POLICY_UPDATE_INVALID:
        snprintf(msg, sizeof(msg), "--control-fd: refused: %s", why);
        log_line(run->opts, CORDON_LOG_WARN, msg);
        audit_emit_quiet(&run->audit, "policy.update", false, true,
                         json_pack("{s:i, s:s}", "line", (int)no, "reason", why));
        return;
    case POLICY_UPDATE_FIXED: {
        snprintf(msg, sizeof(msg), "--control-fd: line %u refused: it changes %s, which cannot "
                                   "change while the command runs (only network.allowedDomains, "
                                   "deniedDomains, deniedDomainReasons, deniedResolvedAddresses, "
                                   "strictAllowlist and defaultPorts can)", no, why);
        log_line(run->opts, CORDON_LOG_WARN, msg);
        char reason[1100];
        snprintf(reason, sizeof(reason), "changes %s", why);
        audit_emit_quiet(&run->audit, "policy.update", false, true,
                         json_pack("{s:i, s:s}", "line", (int)no, "reason", reason));
        return;
    }
    case POLICY_UPDATE_OK:
        break;
    }
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    cordon_policy **nv = realloc(run->updates, (run->nupdates + 1) * sizeof(*nv));
    if (!nv) {
        cordon_policy_free(np);
        return;
    }
    run->updates = nv;
    nv[run->nupdates++] = np;
    run->live = np;
    if (run->proxy)
        proxy_set_rules(run->proxy, &np->net.rules, np->net.denied_domain_reasons,
                        np->net.denied_resolved, np->net.ndenied_resolved);
    capture_rules_changed(run, &np->net.rules);
    snprintf(msg, sizeof(msg), "--control-fd: line %u applied: %zu allowed and %zu "
                               "denied domain entries for the next connection",
             no, np->net.rules.nallow, np->net.rules.ndeny);
    log_line(run->opts, CORDON_LOG_DEBUG, msg);
    json_t *al = json_array(), *dl = json_array();
    for (size_t i = 0; al && i < np->net.rules.nallow; i++)
        json_array_append_new(al, json_string(np->net.rules.allow[i].text));
    for (size_t i = 0; dl && i < np->net.rules.ndeny; i++)
        json_array_append_new(dl, json_string(np->net.rules.deny[i].text));
    audit_emit(&run->audit, "policy.update", true,
               json_pack("{s:i, s:o*, s:o*}", "line", (int)no, "allowedDomains", al,
                         "deniedDomains", dl));
}

#define CONTROL_EARLY_EOF "--control-fd: the control channel closed before delivering any " \
                          "line"

static void on_control_kill(uv_timer_t *t)
{
    struct run *run = t->data;
    if (!run->have_exit)
        kill(run->pid, SIGKILL); /* init, and with it the whole pid namespace */
}

/* The channel ended before its first line (the controller died): as srt,
 * the command is ended, SIGTERM then SIGKILL after 2 s, and the run fails
 * (exit 125: the status the command then has is not its own verdict). */
static void control_closed_early(struct run *run)
{
    if (!run->have_error) {
        run->have_error = true;
        run->r = cordon_err_set(run->err, EPIPE, CONTROL_EARLY_EOF "; the command was ended "
                                                 "(SIGTERM, then SIGKILL after 2 s)");
    }
    if (run->have_exit)
        return;
    kill(run->pid, SIGTERM); /* init passes it to the command */
    if (uv_timer_init(&run->loop, &run->ctl_timer) == 0) {
        run->ctl_timer.data = run;
        run->ctl_timer_active = true;
        uv_timer_start(&run->ctl_timer, on_control_kill, 2000, 0);
    } else {
        kill(run->pid, SIGKILL);
    }
}

static void on_control(uv_poll_t *h, int status, int events)
{
    struct run *run = h->data;
    (void)events;
    char buf[4096];
    ssize_t r = status < 0 ? 0 : read(run->ctl_fd, buf, sizeof(buf));
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        /* EOF: no more updates; the rules in force stay. */
        uv_poll_stop(&run->ctl_poll);
        if (run->ctl_line == 0 && run->ctl_len == 0) {
            control_closed_early(run);
            return;
        }
        if (run->ctl_len) {
            run->ctl_buf[run->ctl_len] = '\0';
            control_line(run, run->ctl_buf);
            run->ctl_len = 0;
        }
        return;
    }
    if (run->ctl_len + (size_t)r + 1 > (16u << 20)) {
        log_line(run->opts, CORDON_LOG_WARN, "--control-fd: a line longer than 16 MiB; dropped");
        run->ctl_len = 0;
        return;
    }
    char *nb = realloc(run->ctl_buf, run->ctl_len + (size_t)r + 1);
    if (!nb)
        return;
    run->ctl_buf = nb;
    memcpy(run->ctl_buf + run->ctl_len, buf, (size_t)r);
    run->ctl_len += (size_t)r;
    char *start = run->ctl_buf, *nl;
    while ((nl = memchr(start, '\n', run->ctl_len - (size_t)(start - run->ctl_buf)))) {
        *nl = '\0';
        control_line(run, start);
        start = nl + 1;
    }
    size_t rest = run->ctl_len - (size_t)(start - run->ctl_buf);
    memmove(run->ctl_buf, start, rest);
    run->ctl_len = rest;
}

/* ---- the proxy ------------------------------------------------------------ */

static int start_proxy(struct run *run, int http_fd, int socks_fd)
{
    const cordon_policy *p = run->policy;
    int r = resolver_new_for_policy(&run->loop, p, &run->resolver, run->err);
    if (r < 0)
        return r;
    struct proxy_config cfg = {
        .rules = &run->live->net.rules,
        .deny_reasons = run->live->net.denied_domain_reasons,
        .allow_private = p->net.allow_private,
        .denied_resolved = run->live->net.denied_resolved,
        .ndenied_resolved = run->live->net.ndenied_resolved,
        .audit = &run->audit,
        .resolver = run->resolver,
        .mitm_domains = p->net.mitm_domains,
        .nmitm_domains = p->net.nmitm_domains,
        .external_http_port = p->net.http_proxy_port,
        .external_socks_port = p->net.socks_proxy_port,
    };
    const char *np = NULL, *what = NULL, *why = NULL;
    char warn[2][400];
    if (proxy_parents_from_policy(&cfg, p, &np, &what, &why, warn) < 0) {
        close(http_fd);
        close(socks_fd);
        return cordon_err_set(run->err, EINVAL, "upstream %s proxy: %s", what, why);
    }
    for (int i = 0; i < 2; i++)
        if (warn[i][0])
            log_line(run->opts, CORDON_LOG_WARN, warn[i]);
    if (np && net_noproxy_parse(np, &run->no_proxy) == 0)
        cfg.no_proxy = &run->no_proxy;
    if (run->ca) {
        cfg.tls_ca = run->ca;
        cfg.tls_server = run->tls_server;
        cfg.tls_client = run->tls_client;
        cfg.tls_exclude = p->net.tls_exclude;
        cfg.ntls_exclude = p->net.ntls_exclude;
        cfg.tls_max_tunnels = p->net.tls_max_tunnels;
        cfg.tls_handshake_timeout_ms = p->net.tls_handshake_timeout_ms;
    }
    cfg.require_host_match = p->net.require_host_match;
    cfg.refuse_opaque = p->net.refuse_opaque_tunnels;
    cfg.strip_response_headers = p->net.strip_response_headers.v;
    cfg.nstrip_response_headers = p->net.strip_response_headers.n;
    cfg.rules_req = p->net.req_rules;
    cfg.nrules_req = p->net.nreq_rules;
    cfg.path_mode = p->net.path_mode;
    cfg.creds = run->creds;
    cfg.strip_request_headers = p->net.strip_request_headers.v;
    cfg.nstrip_request_headers = p->net.strip_request_headers.n;
    cfg.allow_plaintext_inject = p->creds.allow_plaintext_inject;
    cfg.allow_plaintext_header_set = p->net.allow_plaintext_header_set;
    if (p->net.mitm_socket) {
        cfg.mitm.set = true;
        cfg.mitm.unix_socket = true;
        snprintf(cfg.mitm.path, sizeof(cfg.mitm.path), "%s", p->net.mitm_socket);
    }
    if (p->net.transparent && !run->synth && !(run->synth = synth_map_new()))
        r = cordon_err_set(run->err, ENOMEM, "out of memory");
    cfg.synth = run->synth;
    if (r == 0)
        r = proxy_new(&run->loop, &cfg, &run->proxy, run->err);
    explicit_bzero(&cfg, sizeof(cfg));
    if (r < 0) {
        close(http_fd);
        close(socks_fd);
        return r;
    }
    r = proxy_add_listener(run->proxy, http_fd,
                           p->net.http_proxy_port ? PROXY_EXTERNAL_HTTP : PROXY_HTTP, run->err);
    if (r == 0)
        r = proxy_add_listener(run->proxy, socks_fd,
                               p->net.socks_proxy_port ? PROXY_EXTERNAL_SOCKS : PROXY_SOCKS5,
                               run->err);
    else
        close(socks_fd);
    return r;
}

/* ---- the loop ------------------------------------------------------------- */

static void stop_everything(struct run *run)
{
    if (run->sync_active) {
        uv_close((uv_handle_t *)&run->sync_poll, NULL);
        run->sync_active = false;
    }
    if (run->sig_active) {
        uv_close((uv_handle_t *)&run->sig_poll, NULL);
        run->sig_active = false;
    }
    if (run->proxy) {
        proxy_free(run->proxy);
        run->proxy = NULL;
    }
    if (run->observer) {
        observer_stop(run->observer);
        run->observer = NULL;
    }
    /* after the observer, its caller */
    unixsock_free(run->unix_conn);
    run->unix_conn = NULL;
    ports_free(run->ports);
    run->ports = NULL;
    if (run->ctl_active) {
        uv_close((uv_handle_t *)&run->ctl_poll, NULL);
        run->ctl_active = false;
    }
    if (run->ctl_timer_active) {
        uv_close((uv_handle_t *)&run->ctl_timer, NULL);
        run->ctl_timer_active = false;
    }
    if (run->resolver) {
        resolver_free(run->resolver);
        run->resolver = NULL;
    }
    if (run->dns) {
        dns_server_free(run->dns);
        run->dns = NULL;
    }
    synth_map_free(run->synth); /* after the proxy and the DNS server, its readers */
    run->synth = NULL;
    if (run->have_capture_nl) {
        close(run->capture_nl);
        run->have_capture_nl = false;
    }
    net_noproxy_free(&run->no_proxy);
}

/* MSG_CAPTURE: the sandbox's DNS server and the transparent listener
 * (capture.h). Without them the sandbox is still closed: capture missing
 * only means programs that ignore the proxy variables get no network, so it
 * is a warning, never an open door. Takes ownership of fds. */
static void start_capture(struct run *run, const struct sync_msg *msg, int fds[CAPTURE_NFDS])
{
    char line[1300];
    struct cordon_error cerr = { 0 };
    if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || fds[3] < 0 || !run->proxy || run->dns ||
        !run->synth) {
        for (int i = 0; i < CAPTURE_NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        if (msg->code < 0) {
            snprintf(line, sizeof(line), "transparent capture and the sandbox's DNS are "
                     "unavailable (%s): only programs that use the proxy variables have "
                     "network", msg->text);
            log_line(run->opts, CORDON_LOG_WARN, line);
        }
        return;
    }
    /* The routes init made are those of the policy the run started with;
     * an update that came since is applied now. */
    run->routed = &run->policy->net.rules;
    run->capture_nl = fds[3];
    run->have_capture_nl = true;
    fds[3] = -1;
    struct dns_policy pol = { .rules = &run->live->net.rules, .synth = run->synth,
                              .ipv6 = (msg->code & CAPTURE_F_IPV6) != 0 };
    int r = dns_server_new(&run->loop, &pol, &run->audit, &run->dns, &cerr);
    if (r == 0) {
        r = dns_server_add_udp(run->dns, fds[1], &cerr);
        fds[1] = -1;
    }
    if (r == 0) {
        r = dns_server_add_tcp(run->dns, fds[2], &cerr);
        fds[2] = -1;
    }
    if (r == 0) {
        r = proxy_add_listener(run->proxy, fds[0], PROXY_TRANSPARENT, &cerr);
        fds[0] = -1;
    }
    for (int i = 0; i < CAPTURE_NFDS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (r == 0 && run->live != run->policy)
        capture_rules_changed(run, &run->live->net.rules);
    if (r < 0) {
        snprintf(line, sizeof(line), "transparent capture is unavailable: %s", cerr.msg);
        log_line(run->opts, CORDON_LOG_WARN, line);
    }
}

static void on_sync(uv_poll_t *h, int status, int events)
{
    struct run *run = h->data;
    (void)events;
    struct sync_msg msg;
    union {
        char buf[CMSG_SPACE(CAPTURE_NFDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf) };
    /* When init ends with a message of ours unread (MSG_CONTINUE, after a
     * setup failure), closing its end sets ECONNRESET on ours (unix(7): a
     * SOCK_SEQPACKET peer closed with data in its receive queue). The error
     * is reported, and cleared, by the next recvmsg() before the messages init
     * queued, MSG_ERROR among them; epoll reports it as EPOLLERR, on which
     * libuv stops the handle and calls us with status < 0. Either way, read
     * on: the report must reach the user. */
    ssize_t n;
    do {
        mh.msg_controllen = sizeof(u.buf);
        n = recvmsg(run->sync_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && (errno == EINTR || errno == ECONNRESET));
    if (n < 0 && errno == EAGAIN && status >= 0)
        return;
    if (n <= 0) {
        /* init is gone (it never closes its end while alive). */
        stop_everything(run);
        return;
    }
    int fds[CAPTURE_NFDS] = { -1, -1, -1, -1 };
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(CAPTURE_NFDS * sizeof(int)))
            memcpy(fds, CMSG_DATA(cm), CAPTURE_NFDS * sizeof(int));
        else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
                 cm->cmsg_len == CMSG_LEN(2 * sizeof(int)))
            memcpy(fds, CMSG_DATA(cm), 2 * sizeof(int));
        else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
                 cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(fds, CMSG_DATA(cm), sizeof(int));
    }
    if ((size_t)n != sizeof(msg)) {
        for (int i = 0; i < CAPTURE_NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        goto next;
    }
    msg.text[sizeof(msg.text) - 1] = '\0';
    switch (msg.type) {
    case MSG_LISTENERS:
        if (fds[0] < 0 || fds[1] < 0 || run->proxy) {
            for (int i = 0; i < CAPTURE_NFDS; i++)
                if (fds[i] >= 0)
                    close(fds[i]);
            break;
        }
        if (start_proxy(run, fds[0], fds[1]) < 0 && !run->have_error) {
            /* No proxy, no network: the sandbox must not start at all. */
            run->have_error = true;
            run->r = -run->err->code;
            cordon_err_prefix(run->err, "egress proxy");
            kill(run->pid, SIGKILL);
        }
        break;
    case MSG_CAPTURE:
        start_capture(run, &msg, fds);
        break;
    case MSG_HOSTPORT:
        ports_add_host_listener(run->ports, msg.code, fds[0]);
        break;
    case MSG_PUBLISHED:
        ports_published(run->ports, msg.code, fds[0]);
        break;
    case MSG_UNIXDIAG:
        if (fds[0] < 0 && run->unix_conn) {
            char line[300];
            snprintf(line, sizeof(line), "network.allowUnixSockets: the sandbox's own unix "
                     "sockets cannot be recognised (sock_diag: %s); only the listed ones are "
                     "reachable", strerror(msg.code < 0 ? -msg.code : EIO));
            log_line(run->opts, CORDON_LOG_WARN, line);
        }
        unixsock_set_diag(run->unix_conn, fds[0]);
        break;
    case MSG_ERROR:
        if (!run->have_error) {
            run->have_error = true;
            run->r = cordon_err_set(run->err, msg.code, "sandbox setup failed: %s", msg.text);
        }
        break;
    case MSG_EXIT:
        run->have_exit = true;
        run->exit_ws = msg.code;
        break;
    case MSG_NOTIFY:
        if (fds[0] < 0 || run->observer) {
            if (fds[0] >= 0)
                close(fds[0]);
            break;
        }
        {
            struct observe_config oc = { .seccomp = run->plan->seccomp_opts,
                                         .audit = &run->audit, .policy = run->policy,
                                         .prot = run->prot, .unix_conn = run->unix_conn };
            if (observer_start(&run->loop, fds[0], &oc, &run->observer) < 0 &&
                !run->have_error) {
                /* Refused syscalls would fail with ENOSYS: do not go on. */
                run->have_error = true;
                run->r = cordon_err_set(run->err, EIO, "cannot serve the seccomp listener");
                kill(run->pid, SIGKILL);
            }
        }
        break;
    default:
        for (int i = 0; i < CAPTURE_NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    }
next:
    if (status < 0)
        on_sync(h, status, events); /* libuv polls no more: read what is left, to EOF */
}

static void on_signal(uv_poll_t *h, int status, int events)
{
    struct run *run = h->data;
    (void)status;
    (void)events;
    struct signalfd_siginfo si;
    while (read(run->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        kill(run->pid, (int)si.ssi_signo);
}

struct hooks_report {
    struct run *run;
};

/* A repository created inside the sandbox could not be protected in
 * advance: say so when it holds hooks, or configuration keys whose value
 * git runs, that will run outside. */
static void report_hook(void *ud, const char *path, const char *key)
{
    struct hooks_report *h = ud;
    char line[4 * 4400], shown[4 * 4096];
    text_escape(shown, sizeof(shown), path); /* the sandbox named it (core/escape.h) */
    if (key && strcmp(key, PROTECT_APPEARED) == 0)
        snprintf(line, sizeof(line), "a file appeared in a repository during the run that makes "
                                     "git read configuration or hooks from elsewhere, outside "
                                     "the sandbox: %s", shown);
    else if (key) /* key: letters, digits, '-', '.', '*' (protect.c exec_keys) */
        snprintf(line, sizeof(line), "a repository created in the sandbox sets %s, which git "
                                     "runs outside it: %s", key, shown);
    else
        snprintf(line, sizeof(line), "a repository created in the sandbox has a hook that will "
                                     "run outside it: %s", shown);
    log_line(h->run->opts, CORDON_LOG_WARN, line);
    json_t *f = json_pack("{s:s}", "path", path);
    if (f && key && strcmp(key, PROTECT_APPEARED) != 0)
        json_object_set_new(f, "key", json_string(key));
    audit_emit(&h->run->audit, "fs.hook", true, f);
}

static void audit_start(struct run *run, char *const *argv, const char *cwd)
{
    json_t *cmd = json_array();
    for (size_t i = 0; cmd && argv[i]; i++)
        json_array_append_new(cmd, json_string(argv[i]));
    const char *src = NULL;
    cordon_policy_source(run->policy, &src);
    json_t *f = json_pack("{s:o, s:s, s:s, s:i}", "command", cmd, "cwd", cwd, "settings",
                          src ? src : "embedded", "pid", (int)run->pid);
    audit_emit(&run->audit, "run.start", true, f);
}

int cordon_run(const cordon_policy *p, const struct cordon_run_opts *opts, int *exit_status,
               struct cordon_error *err)
{
    return sandbox_run(p, opts, 0, exit_status, err);
}

int sandbox_run(const cordon_policy *p, const struct cordon_run_opts *opts, unsigned disabled,
                int *exit_status, struct cordon_error *err)
{
    if (!opts || !opts->argv || !opts->argv[0])
        return cordon_err_set(err, EINVAL, "no command given");
    int r = stdio_check(err);
    if (r < 0)
        return r;
    if (opts->control_enabled && opts->control_fd >= 0) {
        /* srt refuses these too: 0-2 are the command's stdio, and a channel
         * that cannot be read would read as "closed before any line". */
        int fl = fcntl(opts->control_fd, F_GETFL);
        struct stat st;
        if (opts->control_fd < 3)
            return cordon_err_set(err, EINVAL, "--control-fd %d: must be 3 or more (0, 1 and 2 "
                                  "are the command's stdin, stdout and stderr)", opts->control_fd);
        if (fl < 0 || fstat(opts->control_fd, &st) < 0)
            return cordon_err_set(err, EBADF, "--control-fd %d: not an open file descriptor",
                                  opts->control_fd);
        if ((fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY || S_ISDIR(st.st_mode))
            return cordon_err_set(err, EBADF, "--control-fd %d: not open for reading",
                                  opts->control_fd);
    }

    _cleanup_free_ char *cwd = NULL;
    if (opts->cwd) {
        cwd = strdup(opts->cwd);
    } else {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            return cordon_err_sys(err, errno, "cannot determine the working directory");
    }
    if (!cwd)
        return cordon_err_set(err, ENOMEM, "out of memory");

    struct sandbox_plan plan;
    for (size_t i = 0; i < p->notes.n; i++)
        log_line(opts, CORDON_LOG_DEBUG, p->notes.v[i]);
    /* Workspace protection first: its placeholders must exist before the
     * plan looks at the filesystem. The watchdog removes them if cordon is
     * killed from here on. */
    struct protect_set prot;
    r = protect_prepare(p, cwd, &prot, opts->log, opts->log_userdata, err);
    if (r < 0)
        return r;
    int watchdog = protect_watchdog(&prot, err);
    if (watchdog < -1) {
        protect_release(&prot);
        protect_free(&prot);
        return watchdog;
    }
    /* TLS interception: the CA exists before the plan, which carries its
     * certificate into the sandbox's trust bundle. Its key stays here. */
    struct tls_ca *ca = NULL;
    SSL_CTX *tls_server = NULL, *tls_client = NULL;
    char *ca_pem = NULL;
    if (p->net.tls) {
        r = tls_ca_new(p->net.tls_ca_cert, p->net.tls_ca_key, &ca, err);
        if (r == 0 && !(tls_server = tls_server_ctx_new(err)))
            r = -err->code;
        if (r == 0 && !(tls_client = tls_client_ctx_new(p->net.upstream_ca_file, err)))
            r = -err->code;
        if (r == 0 && !(ca_pem = tls_ca_cert_pem(ca)))
            r = cordon_err_set(err, ENOMEM, "out of memory");
        if (r < 0) {
            SSL_CTX_free(tls_server);
            SSL_CTX_free(tls_client);
            tls_ca_free(ca);
            protect_release(&prot);
            protect_free(&prot);
            if (watchdog >= 0)
                close(watchdog);
            return cordon_err_prefix(err, "tlsTerminate");
        }
    }
    /* Credentials: real values read here and kept here; the plan gets the
     * fakes. */
    struct cred_store *creds = NULL;
    char *const *envp = opts->envp ? opts->envp : environ;
    r = creds_prepare(p, envp, opts->log, opts->log_userdata, &creds, err);
    if (r == 0)
        r = sandbox_plan_build(p, cwd, opts->argv, envp, disabled, &prot, ca_pem, creds,
                               opts->log, opts->log_userdata, &plan, err);
    free(ca_pem);
    if (r != 0) { /* r is 0 or negative; "!= 0" lets the analyzer see that plan is built */
        SSL_CTX_free(tls_server);
        SSL_CTX_free(tls_client);
        tls_ca_free(ca);
        creds_free(creds);
        protect_release(&prot);
        protect_free(&prot);
        if (watchdog >= 0)
            close(watchdog);
        return r;
    }

    /* A client that closes before its answer must not kill the supervisor
     * (a TLS write to it raises SIGPIPE): ignored while the run lasts; the
     * command gets the default back before exec. */
    struct sigaction pipe_ign = { .sa_handler = SIG_IGN }, pipe_old;
    sigemptyset(&pipe_ign.sa_mask);
    sigaction(SIGPIPE, &pipe_ign, &pipe_old);

    mode_t um = umask(0);
    umask(um);
    plan.umask = um;

    sigset_t relay;
    sigemptyset(&relay);
    if (opts->forward_signals)
        for (size_t i = 0; i < ARRAY_SIZE(relayed); i++)
            sigaddset(&relay, relayed[i]);
    /* Block before clone: init inherits the mask (it wants these blocked for
     * its own signalfd) and no signal slips between clone and signalfd. */
    sigset_t oldmask;
    sigprocmask(SIG_BLOCK, &relay, &oldmask);
    plan.sigmask = oldmask;
    plan.sigpipe_ignored = pipe_old.sa_handler == SIG_IGN;

    struct run run = {
        .policy = p, .opts = opts, .err = err, .sync_fd = -1, .sfd = -1, .pid = -1,
        .audit = { .fd = opts->audit_enabled ? opts->audit_fd : -1 },
        .ca = ca, .tls_server = tls_server, .tls_client = tls_client, .creds = creds,
        .plan = &plan, .prot = &prot, .live = p, .ctl_fd = -1,
    };
    run.audit.on_denial = opts->on_denial;
    run.audit.denial_ud = opts->denial_userdata;
    int sv[2] = { -1, -1 };
    char *cgroup = NULL;
    int cgroup_join = -1;
    bool loop_ok = false;
    /* The proxy holds two descriptors per connection (four more while a
     * tunnel splices): 1000 tunnels need more than the usual soft limit of
     * 1024 (tests/integration/test_load.py). Raised to the hard limit after
     * clone, so the sandbox keeps the caller's limits; restored on return. */
    struct rlimit nofile_old;
    bool nofile_raised = false;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        r = cordon_err_sys(err, errno, "socketpair");
        goto out;
    }
    if (opts->forward_signals) {
        run.sfd = signalfd(-1, &relay, SFD_CLOEXEC | SFD_NONBLOCK);
        if (run.sfd < 0) {
            r = cordon_err_sys(err, errno, "signalfd");
            goto out;
        }
    }

    run.pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                                            CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | SIGCHLD,
                             0, 0, 0, 0);
    if (run.pid < 0) {
        int e = errno;
        r = cordon_err_sys(err, e, "cannot create the sandbox's namespaces (unprivileged user "
                                   "namespaces may be disabled; run `cordon doctor`)");
        goto out;
    }
    if (run.pid == 0) {
        close(sv[0]);
        sandbox_init_main(&plan, sv[1]);
    }
    close(sv[1]);
    sv[1] = -1;
    run.sync_fd = sv[0];
    if (getrlimit(RLIMIT_NOFILE, &nofile_old) == 0 && nofile_old.rlim_cur < nofile_old.rlim_max) {
        struct rlimit raised = { .rlim_cur = nofile_old.rlim_max, .rlim_max = nofile_old.rlim_max };
        nofile_raised = setrlimit(RLIMIT_NOFILE, &raised) == 0;
    }

    r = write_maps(run.pid, plan.uid, plan.gid, err);
    if (r < 0)
        goto out;
    if (uv_loop_init(&run.loop) < 0) {
        r = cordon_err_set(err, ENOMEM, "cannot start the event loop");
        goto out;
    }
    loop_ok = true;
    uv_poll_init_socket(&run.loop, &run.sync_poll, run.sync_fd);
    run.sync_poll.data = &run;
    uv_poll_start(&run.sync_poll, UV_READABLE, on_sync);
    run.sync_active = true;
    if (run.sfd >= 0) {
        uv_poll_init(&run.loop, &run.sig_poll, run.sfd);
        run.sig_poll.data = &run;
        uv_poll_start(&run.sig_poll, UV_READABLE, on_signal);
        run.sig_active = true;
    }
    /* Local services (ports.h, unixsock.h): a published port that is taken
     * on the host stops the run before the command starts. */
    if (p->net.nhost_ports || p->net.npublish_ports) {
        struct ports_config pc = { .loop = &run.loop, .audit = &run.audit, .policy = p,
                                   .sync_fd = run.sync_fd, .log = opts->log,
                                   .log_ud = opts->log_userdata };
        if ((r = ports_new(&pc, &run.ports, err)) < 0)
            goto out;
    }
    if (plan.seccomp_opts.emulate_unix_connect) {
        struct unixsock_config uc = { .loop = &run.loop, .audit = &run.audit, .policy = p };
        if ((r = unixsock_new(&uc, &run.unix_conn, err)) < 0)
            goto out;
    }
    if (opts->control_enabled && opts->control_fd >= 0) {
        run.ctl_fd = opts->control_fd;
        int fl = fcntl(run.ctl_fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(run.ctl_fd, F_SETFL, fl | O_NONBLOCK);
        if (uv_poll_init(&run.loop, &run.ctl_poll, run.ctl_fd) == 0) {
            run.ctl_poll.data = &run;
            uv_poll_start(&run.ctl_poll, UV_READABLE, on_control);
            run.ctl_active = true;
        } else {
            /* A regular file cannot be polled: its lines are read now, in
             * order, before the command starts (the last one wins). */
            char buf[4096];
            ssize_t k;
            while ((k = read(run.ctl_fd, buf, sizeof(buf))) != 0) {
                if (k < 0 && errno == EINTR)
                    continue;
                if (k < 0) {
                    log_line(opts, CORDON_LOG_WARN, "--control-fd: cannot be read");
                    break;
                }
                char *nb = realloc(run.ctl_buf, run.ctl_len + (size_t)k + 1);
                if (!nb)
                    break;
                run.ctl_buf = nb;
                memcpy(run.ctl_buf + run.ctl_len, buf, (size_t)k);
                run.ctl_len += (size_t)k;
            }
            run.ctl_file = true; /* applied once run.start is recorded */
            if (run.ctl_len == 0) {
                /* Nothing to deliver, ever: refused before the command runs. */
                r = cordon_err_set(err, EPIPE, CONTROL_EARLY_EOF " (an empty file)");
                goto out;
            }
        }
    }

    audit_start(&run, opts->argv, plan.cwd);
    if (run.ctl_file && run.ctl_len) {
        run.ctl_buf[run.ctl_len] = '\0';
        for (char *line = run.ctl_buf, *nl; line; line = nl) {
            nl = strchr(line, '\n');
            if (nl)
                *nl++ = '\0';
            control_line(&run, line);
        }
        run.ctl_len = 0;
    }
    struct sync_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = MSG_GO;
    if (send(run.sync_fd, &msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg)) {
        r = cordon_err_sys(err, errno, "cannot start the sandbox");
        goto out;
    }
    /* RLIMIT_NPROC is not enforced for the host's root: use a pids cgroup,
     * made while init builds the view. Init joins it on MSG_CONTINUE, before
     * it starts the command (see harden_pids_cgroup_create). */
    if (getuid() == 0 && plan.limits[LIM_NPROC].set &&
        plan.limits[LIM_NPROC].value != RLIM_INFINITY) {
        struct cordon_error cerr = { 0 };
        harden_pids_cgroup_sweep();
        if (harden_pids_cgroup_create(plan.limits[LIM_NPROC].value, &cgroup, &cgroup_join,
                                      &cerr) < 0) {
            char line[1200];
            snprintf(line, sizeof(line), "the process limit is not enforced for root: %s",
                     cerr.msg);
            log_line(opts, CORDON_LOG_WARN, line);
        }
    }
    if (run.ca || run.creds) {
        /* The CA key and real credentials live in this process: no core
         * dump, and no other process of the user may read its memory
         * (ptrace(2) access mode checks). Only now, after the id maps of
         * init are written. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    msg.type = MSG_CONTINUE;
    /* With the pids cgroup's file, through which init joins it. init may
     * have failed already: its report is queued for the loop. */
    ssize_t sent = sync_send(run.sync_fd, &msg, cgroup_join);
    int serr = errno;
    if (cgroup_join >= 0)
        close(cgroup_join);
    if (sent != (ssize_t)sizeof(msg) && serr != EPIPE && serr != ECONNRESET) {
        r = cordon_err_sys(err, serr, "cannot start the sandbox");
        goto out;
    }
    uv_run(&run.loop, UV_RUN_DEFAULT);
    r = run.have_error ? run.r : 0;

out:;
    int ws = 0;
    if (loop_ok) {
        stop_everything(&run);
        uv_run(&run.loop, UV_RUN_DEFAULT);
        uv_loop_close(&run.loop);
    }
    if (run.pid > 0) {
        if (r < 0 && !run.have_error)
            kill(run.pid, SIGKILL);
        while (waitpid(run.pid, &ws, 0) < 0 && errno == EINTR)
            ;
    }
    if (run.sync_fd >= 0)
        close(run.sync_fd);
    else if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (run.sfd >= 0)
        close(run.sfd);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGPIPE, &pipe_old, NULL);
    if (nofile_raised)
        setrlimit(RLIMIT_NOFILE, &nofile_old);
    sandbox_plan_free(&plan);
    SSL_CTX_free(run.tls_server);
    SSL_CTX_free(run.tls_client);
    tls_ca_free(run.ca);
    creds_free(run.creds);
    for (size_t i = 0; i < run.nupdates; i++)
        cordon_policy_free(run.updates[i]);
    free(run.updates);
    free(run.ctl_buf);
    struct hooks_report hr = { .run = &run };
    protect_check_new_hooks(&prot, p->mandatory_deny_search_depth, report_hook, &hr);
    protect_release(&prot);
    protect_free(&prot);
    if (watchdog >= 0)
        close(watchdog);
    if (cgroup) {
        harden_pids_cgroup_remove(cgroup);
        free(cgroup);
    }

    if (r < 0)
        return r;
    if (!run.have_exit) {
        if (WIFSIGNALED(ws))
            return cordon_err_set(err, ECHILD, "the sandbox's init was killed by signal %d",
                                  WTERMSIG(ws));
        return cordon_err_set(err, ECHILD, "the sandbox's init ended (status %d) without "
                                           "reporting the command's status",
                              WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    }
    if (WIFEXITED(run.exit_ws))
        *exit_status = WEXITSTATUS(run.exit_ws);
    else if (WIFSIGNALED(run.exit_ws))
        *exit_status = 128 + WTERMSIG(run.exit_ws);
    else
        *exit_status = CORDON_EXIT_FAILURE;
    audit_emit(&run.audit, "run.exit", true, json_pack("{s:i}", "status", *exit_status));
    return 0;
}
