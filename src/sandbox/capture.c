/* capture.c: see capture.h.
 *
 * The messages are plain rtnetlink (rtnetlink(7)) and nfnetlink batches for
 * nf_tables (the same attributes nft(8) sends; linux/netfilter/nf_tables.h),
 * written with a small builder instead of libmnl/libnftnl: six rules do not
 * justify two more libraries, and the bytes must exist before clone(2)
 * anyway. The ruleset, as nft(8) would list it:
 *
 *   table inet cordon {
 *     chain capture {
 *       type nat hook output priority -100; policy accept;
 *       meta nfproto ipv4 ip daddr 127.0.0.0/8 accept
 *       meta nfproto ipv6 ip6 daddr ::1 accept
 *       meta l4proto tcp redirect to :3129
 *     }
 *     chain guard {
 *       type filter hook output priority 0; policy drop;
 *       meta nfproto ipv4 ip daddr 127.0.0.0/8 accept
 *       meta nfproto ipv6 ip6 daddr ::1 accept
 *       meta l4proto tcp accept
 *     }
 *   }
 *
 * The guard runs after the redirect, so a captured connection's packets
 * already go to loopback there; replies to the captured client (to its
 * synthetic source address) are TCP.
 */
#include "capture.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "net/synth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LO_IFINDEX 1 /* the loopback device of every network namespace */
#define TABLE "cordon"

/* Sequence numbers name the step in an error message. */
enum {
    SEQ_ADDR4 = 1, SEQ_UNREACH4, SEQ_LOCAL4,
    SEQ_ADDR6 = 1001, SEQ_UNREACH6, SEQ_LOCAL6,
    SEQ_TABLE = 2001, SEQ_NAT_CHAIN, SEQ_NAT_RULE, SEQ_GUARD_CHAIN = 2010, SEQ_GUARD_RULE,
};

static const char *step_name(uint32_t seq)
{
    if (seq == SEQ_ADDR4)
        return "add " SYNTH_V4_LO_TEXT "/15 to lo";
    if (seq == SEQ_UNREACH4)
        return "add the unreachable IPv4 default route";
    if (seq >= SEQ_LOCAL4 && seq < SEQ_ADDR6)
        return "add a local route for an allowed IPv4 address";
    if (seq == SEQ_ADDR6)
        return "add " SYNTH_V6_LO_TEXT "/96 to lo";
    if (seq == SEQ_UNREACH6)
        return "add the unreachable IPv6 default route";
    if (seq >= SEQ_LOCAL6 && seq < SEQ_TABLE)
        return "add a local route for an allowed IPv6 address";
    if (seq == SEQ_TABLE)
        return "create the nftables table";
    if (seq == SEQ_NAT_CHAIN || seq == SEQ_GUARD_CHAIN)
        return "create an nftables chain";
    return "add an nftables rule";
}

/* ---- a netlink message builder (plan time: it allocates) ------------------- */

struct nlb {
    uint8_t *b;
    size_t len, cap;
    bool oom;
    unsigned acks;
};

static size_t nlb_reserve(struct nlb *n, size_t sz)
{
    size_t at = NLMSG_ALIGN(n->len);
    size_t need = at + NLMSG_ALIGN(sz);
    if (need > n->cap) {
        size_t nc = n->cap ? n->cap * 2 : 1024;
        while (nc < need)
            nc *= 2;
        uint8_t *nb = realloc(n->b, nc);
        if (!nb) {
            n->oom = true;
            return SIZE_MAX;
        }
        n->b = nb;
        n->cap = nc;
    }
    memset(n->b + n->len, 0, need - n->len);
    n->len = need;
    return at;
}

/* A message with its family header; returns its offset (for msg_end). */
static size_t msg_begin(struct nlb *n, uint16_t type, uint16_t flags, uint32_t seq,
                        const void *hdr, size_t hlen)
{
    size_t at = nlb_reserve(n, NLMSG_HDRLEN + hlen);
    if (at == SIZE_MAX)
        return at;
    struct nlmsghdr *h = (struct nlmsghdr *)(n->b + at);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_seq = seq;
    memcpy(n->b + at + NLMSG_HDRLEN, hdr, hlen);
    if (flags & NLM_F_ACK)
        n->acks++;
    return at;
}

static void msg_end(struct nlb *n, size_t at)
{
    if (n->oom)
        return;
    ((struct nlmsghdr *)(n->b + at))->nlmsg_len = (uint32_t)(n->len - at);
}

static void attr(struct nlb *n, uint16_t type, const void *data, size_t len)
{
    size_t at = nlb_reserve(n, NLA_HDRLEN + len);
    if (at == SIZE_MAX)
        return;
    struct nlattr *a = (struct nlattr *)(n->b + at);
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy(n->b + at + NLA_HDRLEN, data, len);
}

static void attr_be32(struct nlb *n, uint16_t type, uint32_t v)
{
    uint32_t be = htonl(v);
    attr(n, type, &be, sizeof(be));
}

static void attr_u32(struct nlb *n, uint16_t type, uint32_t v)
{
    attr(n, type, &v, sizeof(v));
}

static void attr_str(struct nlb *n, uint16_t type, const char *s)
{
    attr(n, type, s, strlen(s) + 1);
}

static size_t nest_begin(struct nlb *n, uint16_t type)
{
    size_t at = nlb_reserve(n, NLA_HDRLEN);
    if (at != SIZE_MAX)
        ((struct nlattr *)(n->b + at))->nla_type = (uint16_t)(type | NLA_F_NESTED);
    return at;
}

static void nest_end(struct nlb *n, size_t at)
{
    if (n->oom)
        return;
    ((struct nlattr *)(n->b + at))->nla_len = (uint16_t)(n->len - at);
}

/* ---- rtnetlink ----------------------------------------------------------------- */

static void rt_addr(struct nlb *n, uint32_t seq, int family, const uint8_t *a, uint8_t plen,
                    uint8_t flags, uint8_t scope)
{
    struct ifaddrmsg ifa = { .ifa_family = (uint8_t)family, .ifa_prefixlen = plen,
                             .ifa_flags = flags, .ifa_scope = scope, .ifa_index = LO_IFINDEX };
    size_t m = msg_begin(n, RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                         seq, &ifa, sizeof(ifa));
    size_t al = family == AF_INET ? 4 : 16;
    attr(n, IFA_LOCAL, a, al);
    attr(n, IFA_ADDRESS, a, al);
    msg_end(n, m);
}

/* The default route of a family, of type "unreachable": connect(2) and
 * sendto(2) fail with EHOSTUNREACH at once. */
static void rt_unreachable(struct nlb *n, uint32_t seq, int family)
{
    struct rtmsg rt = { .rtm_family = (uint8_t)family, .rtm_table = RT_TABLE_MAIN,
                        .rtm_protocol = RTPROT_STATIC, .rtm_scope = RT_SCOPE_UNIVERSE,
                        .rtm_type = RTN_UNREACHABLE };
    size_t m = msg_begin(n, RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                         seq, &rt, sizeof(rt));
    msg_end(n, m);
}

/* An allowed literal that needs a route of its own: not loopback (the
 * sandbox's own), not already synthetic, not unspecified or multicast. */
static bool literal_routed(const struct net_entry *e)
{
    static const uint8_t zero[16];
    if (e->kind == HOST_IPV4) {
        const uint8_t *a = e->addr;
        return a[0] != 127 && a[0] != 0 && a[0] < 224 && !synth_in_range(4, a);
    }
    if (e->kind == HOST_IPV6) {
        const uint8_t *a = e->addr;
        bool loop = memcmp(a, zero, 15) == 0 && a[15] == 1;
        return !loop && memcmp(a, zero, 16) != 0 && a[0] != 0xff && !synth_in_range(6, a);
    }
    return false;
}

/* Is e the first allowed literal entry with its address (one route each)? */
static bool first_literal(const struct net_rules *rules, size_t i)
{
    const struct net_entry *e = &rules->allow[i];
    if (!literal_routed(e))
        return false;
    for (size_t k = 0; k < i; k++)
        if (rules->allow[k].kind == e->kind && literal_routed(&rules->allow[k]) &&
            memcmp(rules->allow[k].addr, e->addr, e->kind == HOST_IPV4 ? 4 : 16) == 0)
            return false;
    return true;
}

static bool has_literal(const struct net_rules *rules, const struct net_entry *e)
{
    for (size_t k = 0; k < rules->nallow; k++)
        if (rules->allow[k].kind == e->kind && literal_routed(&rules->allow[k]) &&
            memcmp(rules->allow[k].addr, e->addr, e->kind == HOST_IPV4 ? 4 : 16) == 0)
            return true;
    return false;
}

static void literal_route(struct nlb *n, uint16_t type, const struct net_entry *e)
{
    struct rtmsg rt = { .rtm_family = e->kind == HOST_IPV4 ? AF_INET : AF_INET6,
                        .rtm_dst_len = e->kind == HOST_IPV4 ? 32 : 128,
                        .rtm_table = RT_TABLE_LOCAL, .rtm_protocol = RTPROT_STATIC,
                        .rtm_scope = e->kind == HOST_IPV4 ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE,
                        .rtm_type = RTN_LOCAL };
    uint16_t flags = NLM_F_REQUEST | NLM_F_ACK |
                     (type == RTM_NEWROUTE ? NLM_F_CREATE | NLM_F_EXCL : 0);
    size_t m = msg_begin(n, type, flags, e->kind == HOST_IPV4 ? SEQ_LOCAL4 : SEQ_LOCAL6, &rt,
                         sizeof(rt));
    attr(n, RTA_DST, e->addr, e->kind == HOST_IPV4 ? 4 : 16);
    attr_u32(n, RTA_OIF, LO_IFINDEX);
    msg_end(n, m);
}

static void build_rtnl(struct nlb *n4, struct nlb *n6, const struct net_rules *rules)
{
    uint8_t lo4[4], lo6[16];
    inet_pton(AF_INET, SYNTH_V4_LO_TEXT, lo4);
    inet_pton(AF_INET6, SYNTH_V6_LO_TEXT, lo6);
    rt_addr(n4, SEQ_ADDR4, AF_INET, lo4, SYNTH_V4_PREFIXLEN, 0, RT_SCOPE_HOST);
    rt_unreachable(n4, SEQ_UNREACH4, AF_INET);
    rt_addr(n6, SEQ_ADDR6, AF_INET6, lo6, SYNTH_V6_PREFIXLEN, IFA_F_NODAD, RT_SCOPE_UNIVERSE);
    rt_unreachable(n6, SEQ_UNREACH6, AF_INET6);
    /* The same address in two entries (two ports): one route. */
    for (size_t i = 0; i < rules->nallow; i++)
        if (first_literal(rules, i))
            literal_route(rules->allow[i].kind == HOST_IPV4 ? n4 : n6, RTM_NEWROUTE,
                          &rules->allow[i]);
}

/* ---- nf_tables ------------------------------------------------------------------ */

static size_t nft_msg(struct nlb *n, uint16_t type, uint16_t flags, uint32_t seq, int family,
                      uint16_t res_id)
{
    struct nfgenmsg g = { .nfgen_family = (uint8_t)family, .version = NFNETLINK_V0,
                          .res_id = htons(res_id) };
    return msg_begin(n, type, flags, seq, &g, sizeof(g));
}

#define NFT_TYPE(m) ((uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | (m)))

static size_t expr_begin(struct nlb *n, const char *name, size_t *data)
{
    size_t el = nest_begin(n, NFTA_LIST_ELEM);
    attr_str(n, NFTA_EXPR_NAME, name);
    *data = nest_begin(n, NFTA_EXPR_DATA);
    return el;
}

static void expr_end(struct nlb *n, size_t el, size_t data)
{
    nest_end(n, data);
    nest_end(n, el);
}

static void e_meta(struct nlb *n, uint32_t key)
{
    size_t d, e = expr_begin(n, "meta", &d);
    attr_be32(n, NFTA_META_KEY, key);
    attr_be32(n, NFTA_META_DREG, NFT_REG_1);
    expr_end(n, e, d);
}

static void data_value(struct nlb *n, uint16_t type, const void *v, size_t len)
{
    size_t nd = nest_begin(n, type);
    attr(n, NFTA_DATA_VALUE, v, len);
    nest_end(n, nd);
}

static void e_cmp_eq(struct nlb *n, const void *v, size_t len)
{
    size_t d, e = expr_begin(n, "cmp", &d);
    attr_be32(n, NFTA_CMP_SREG, NFT_REG_1);
    attr_be32(n, NFTA_CMP_OP, NFT_CMP_EQ);
    data_value(n, NFTA_CMP_DATA, v, len);
    expr_end(n, e, d);
}

static void e_daddr(struct nlb *n, uint32_t offset, uint32_t len)
{
    size_t d, e = expr_begin(n, "payload", &d);
    attr_be32(n, NFTA_PAYLOAD_DREG, NFT_REG_1);
    attr_be32(n, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
    attr_be32(n, NFTA_PAYLOAD_OFFSET, offset);
    attr_be32(n, NFTA_PAYLOAD_LEN, len);
    expr_end(n, e, d);
}

static void e_mask4(struct nlb *n, const uint8_t mask[4])
{
    static const uint8_t zero[4];
    size_t d, e = expr_begin(n, "bitwise", &d);
    attr_be32(n, NFTA_BITWISE_SREG, NFT_REG_1);
    attr_be32(n, NFTA_BITWISE_DREG, NFT_REG_1);
    attr_be32(n, NFTA_BITWISE_LEN, 4);
    data_value(n, NFTA_BITWISE_MASK, mask, 4);
    data_value(n, NFTA_BITWISE_XOR, zero, 4);
    expr_end(n, e, d);
}

static void e_verdict(struct nlb *n, int32_t code)
{
    size_t d, e = expr_begin(n, "immediate", &d);
    attr_be32(n, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    size_t id = nest_begin(n, NFTA_IMMEDIATE_DATA);
    size_t vd = nest_begin(n, NFTA_DATA_VERDICT);
    attr_be32(n, NFTA_VERDICT_CODE, (uint32_t)code);
    nest_end(n, vd);
    nest_end(n, id);
    expr_end(n, e, d);
}

static void e_redirect(struct nlb *n, uint16_t port)
{
    uint16_t be = htons(port);
    size_t d, e = expr_begin(n, "immediate", &d);
    attr_be32(n, NFTA_IMMEDIATE_DREG, NFT_REG_1);
    data_value(n, NFTA_IMMEDIATE_DATA, &be, sizeof(be));
    expr_end(n, e, d);
    e = expr_begin(n, "redir", &d);
    attr_be32(n, NFTA_REDIR_REG_PROTO_MIN, NFT_REG_1);
    expr_end(n, e, d);
}

static size_t rule_begin(struct nlb *n, uint32_t seq, const char *chain, size_t *exprs)
{
    size_t m = nft_msg(n, NFT_TYPE(NFT_MSG_NEWRULE),
                       NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, seq,
                       NFPROTO_INET, 0);
    attr_str(n, NFTA_RULE_TABLE, TABLE);
    attr_str(n, NFTA_RULE_CHAIN, chain);
    *exprs = nest_begin(n, NFTA_RULE_EXPRESSIONS);
    return m;
}

static void rule_end(struct nlb *n, size_t m, size_t exprs)
{
    nest_end(n, exprs);
    msg_end(n, m);
}

/* The loopback rules both chains start with: ip daddr 127.0.0.0/8 and ip6
 * daddr ::1 accept. */
static void loopback_rules(struct nlb *n, uint32_t *seq, const char *chain)
{
    static const uint8_t v4[] = { NFPROTO_IPV4 }, v6[] = { NFPROTO_IPV6 };
    static const uint8_t mask8[4] = { 255, 0, 0, 0 }, net127[4] = { 127, 0, 0, 0 };
    static const uint8_t lo6[16] = { [15] = 1 };
    size_t x, m = rule_begin(n, (*seq)++, chain, &x);
    e_meta(n, NFT_META_NFPROTO);
    e_cmp_eq(n, v4, 1);
    e_daddr(n, 16, 4); /* struct iphdr: daddr */
    e_mask4(n, mask8);
    e_cmp_eq(n, net127, 4);
    e_verdict(n, NF_ACCEPT);
    rule_end(n, m, x);
    m = rule_begin(n, (*seq)++, chain, &x);
    e_meta(n, NFT_META_NFPROTO);
    e_cmp_eq(n, v6, 1);
    e_daddr(n, 24, 16); /* struct ipv6hdr: daddr */
    e_cmp_eq(n, lo6, 16);
    e_verdict(n, NF_ACCEPT);
    rule_end(n, m, x);
}

static void chain(struct nlb *n, uint32_t seq, const char *name, const char *type,
                  int32_t prio, uint32_t policy)
{
    size_t m = nft_msg(n, NFT_TYPE(NFT_MSG_NEWCHAIN), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
                       seq, NFPROTO_INET, 0);
    attr_str(n, NFTA_CHAIN_TABLE, TABLE);
    attr_str(n, NFTA_CHAIN_NAME, name);
    size_t h = nest_begin(n, NFTA_CHAIN_HOOK);
    attr_be32(n, NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
    attr_be32(n, NFTA_HOOK_PRIORITY, (uint32_t)prio);
    nest_end(n, h);
    attr_be32(n, NFTA_CHAIN_POLICY, policy);
    attr_str(n, NFTA_CHAIN_TYPE, type);
    msg_end(n, m);
}

static void build_nft(struct nlb *n)
{
    static const uint8_t tcp[] = { IPPROTO_TCP };
    size_t m = nft_msg(n, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, AF_UNSPEC,
                       NFNL_SUBSYS_NFTABLES);
    msg_end(n, m);
    m = nft_msg(n, NFT_TYPE(NFT_MSG_NEWTABLE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
                SEQ_TABLE, NFPROTO_INET, 0);
    attr_str(n, NFTA_TABLE_NAME, TABLE);
    msg_end(n, m);

    uint32_t seq = SEQ_NAT_RULE;
    chain(n, SEQ_NAT_CHAIN, "capture", "nat", -100, NF_ACCEPT);
    loopback_rules(n, &seq, "capture");
    size_t x;
    m = rule_begin(n, seq++, "capture", &x);
    e_meta(n, NFT_META_L4PROTO);
    e_cmp_eq(n, tcp, 1);
    e_redirect(n, CORDON_TRANSPARENT_PORT);
    rule_end(n, m, x);

    seq = SEQ_GUARD_RULE;
    chain(n, SEQ_GUARD_CHAIN, "guard", "filter", 0, NF_DROP);
    loopback_rules(n, &seq, "guard");
    m = rule_begin(n, seq++, "guard", &x);
    e_meta(n, NFT_META_L4PROTO);
    e_cmp_eq(n, tcp, 1);
    e_verdict(n, NF_ACCEPT);
    rule_end(n, m, x);

    m = nft_msg(n, NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    msg_end(n, m);
}

int capture_plan_build(struct capture_plan *cp, const struct net_rules *rules,
                       struct cordon_error *err)
{
    struct nlb n4 = { 0 }, n6 = { 0 }, nf = { 0 };
    build_rtnl(&n4, &n6, rules);
    build_nft(&nf);
    static const char resolv[] =
        "# cordon: the sandbox's own DNS server. It answers only names the policy could\n"
        "# allow, with addresses that lead to cordon's proxy; nothing is forwarded.\n"
        "nameserver 127.0.0.1\n";
    cp->resolv_conf = strdup(resolv);
    if (n4.oom || n6.oom || nf.oom || !cp->resolv_conf) {
        free(n4.b);
        free(n6.b);
        free(nf.b);
        free(cp->resolv_conf);
        cp->resolv_conf = NULL;
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    cp->resolv_len = sizeof(resolv) - 1;
    cp->rtnl4 = n4.b;
    cp->rtnl4_len = n4.len;
    cp->rtnl4_acks = n4.acks;
    cp->rtnl6 = n6.b;
    cp->rtnl6_len = n6.len;
    cp->rtnl6_acks = n6.acks;
    cp->nft = nf.b;
    cp->nft_len = nf.len;
    cp->nft_acks = nf.acks;
    cp->on = true;
    return 0;
}

void capture_plan_free(struct capture_plan *cp)
{
    free(cp->rtnl4);
    free(cp->rtnl6);
    free(cp->nft);
    free(cp->resolv_conf);
    memset(cp, 0, sizeof(*cp));
}

/* ---- in init ------------------------------------------------------------------ */

/* Send a run of messages on netlink socket s and wait for every
 * acknowledgement. An error whose code is in `ignore` (a route that is
 * already there, or already gone) counts as an acknowledgement. Returns 0,
 * or -errno with *seq the step that failed. */
static int transact_fd(int s, const uint8_t *msgs, size_t len, unsigned acks, int ignore1,
                       int ignore2, uint32_t *seq)
{
    *seq = 0;
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    if (sendto(s, msgs, len, 0, (struct sockaddr *)&sa, sizeof(sa)) != (ssize_t)len)
        return -errno;
    unsigned got = 0;
    union {
        char b[4096];
        struct nlmsghdr align;
    } buf;
    while (got < acks) {
        ssize_t n = recv(s, buf.b, sizeof(buf.b), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -(errno == EAGAIN ? ETIMEDOUT : errno);
        }
        size_t left = (size_t)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf.b; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type != NLMSG_ERROR)
                continue;
            const struct nlmsgerr *e = NLMSG_DATA(h);
            if (e->error != 0 && -e->error != ignore1 && -e->error != ignore2) {
                *seq = h->nlmsg_seq;
                return e->error;
            }
            got++;
        }
    }
    return 0;
}

static int transact(int proto, const uint8_t *msgs, size_t len, unsigned acks, uint32_t *seq)
{
    *seq = 0;
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (s < 0)
        return -errno;
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int r = transact_fd(s, msgs, len, acks, 0, 0, seq);
    close(s);
    return r;
}

static int step_fail(char *err, size_t errlen, int r, uint32_t seq)
{
    snprintf(err, errlen, "cannot %s: %s", seq ? step_name(seq) : "talk to the kernel (netlink)",
             strerror(-r));
    return r;
}

int capture_apply(const struct capture_plan *cp, bool *ipv6, char *err, size_t errlen)
{
    uint32_t seq;
    *ipv6 = false;
    int r = transact(NETLINK_ROUTE, cp->rtnl4, cp->rtnl4_len, cp->rtnl4_acks, &seq);
    if (r < 0)
        return step_fail(err, errlen, r, seq);
    *ipv6 = transact(NETLINK_ROUTE, cp->rtnl6, cp->rtnl6_len, cp->rtnl6_acks, &seq) == 0;
    r = transact(NETLINK_NETFILTER, cp->nft, cp->nft_len, cp->nft_acks, &seq);
    if (r < 0)
        return step_fail(err, errlen, r, seq);
    return 0;
}

/* ---- in the supervisor: live updates ------------------------------------------ */

int capture_update_routes(int nl, const struct net_rules *old, const struct net_rules *rules,
                          struct cordon_error *err)
{
    struct nlb n = { 0 };
    for (size_t i = 0; i < old->nallow; i++)
        if (first_literal(old, i) && !has_literal(rules, &old->allow[i]))
            literal_route(&n, RTM_DELROUTE, &old->allow[i]);
    for (size_t i = 0; i < rules->nallow; i++)
        if (first_literal(rules, i) && !has_literal(old, &rules->allow[i]))
            literal_route(&n, RTM_NEWROUTE, &rules->allow[i]);
    if (n.oom) {
        free(n.b);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    if (!n.acks)
        return 0;
    uint32_t seq;
    /* Already there, already gone, or no IPv6 in the sandbox: nothing to do. */
    int r = transact_fd(nl, n.b, n.len, n.acks, EEXIST, ESRCH, &seq);
    free(n.b);
    if (r == -EAFNOSUPPORT || r == -EOPNOTSUPP)
        r = 0;
    if (r < 0)
        return cordon_err_sys(err, -r, "cannot %s", step_name(seq));
    return 0;
}
