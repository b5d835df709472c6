"""Bypass attempts against TLS interception (egress-attacks.md T1, T2, T18,
T23, T25): each is refused with its exact answer (TLS alert, status,
X-Proxy-Error, audit record) and the forbidden request never reaches the
origin. With requireHostMatch false, T1 and T2 pass, and what they still
cannot do is asserted too.

cordon dials the upstream as soon as a CONNECT is allowed, before the
ClientHello arrives, so in the refused cases the origin sees a TCP
connection that closes without a handshake ("reached" below means a
handshake or a request). Every test runs as root and as uid 65534.
"""
import base64

import pytest

import tls_lab
from tls_lab import Tls, cert_info, client_hello, first_record, header


@pytest.fixture(scope="module")
def lab():
    lb = tls_lab.Lab()
    yield lb
    lb.stop()


@pytest.fixture
def tls(sb, lab):
    return Tls(sb, lab)


def tunnel(authority, reqs=(), **kw):
    t = {"cafile": tls_lab.CORDON_CA}
    t.update(kw.pop("tls", {}))
    return dict(op="tunnel", connect=authority, tls=t, reqs=list(reqs), **kw)


def fronting_reason(sni, target):
    return ('TLS handshake with the client failed: the TLS server name "%s" does not name '
            'the CONNECT target %s' % (sni, target))


def only_tcp(tls):
    """The origin saw TCP connections only, each closed without a handshake."""
    tls.settle()
    assert tls.reached() == [], tls.events()
    assert all(e["ev"] in ("accept", "tls-error") for e in tls.events()), tls.events()


# ---------------------------------------------------------------------------
# T1: domain fronting, an SNI other than the CONNECT target

def test_t1_openssl_s_client_with_another_server_name_gets_unrecognized_name(tls):
    """`openssl s_client -proxy 127.0.0.1:3128 -connect origin.test:PORT
    -servername evil.test`: the handshake ends with the alert
    unrecognized_name (112); the audit denies the tunnel naming both names;
    the origin never sees a handshake."""
    p = tls.sh(tls.settings(), "openssl s_client -proxy 127.0.0.1:3128 -connect %s "
               "-servername evil.test -CAfile /dev/cordon-ca.pem </dev/null; echo rc=$?"
               % tls.host)
    assert p.returncode == 0, p.stderr
    assert "tlsv1 unrecognized name" in p.stderr and "SSL alert number 112" in p.stderr, \
        p.stderr
    assert "no peer certificate available" in p.stdout and p.stdout.rstrip().endswith("rc=1")
    assert tls.connects() == [
        ("allow", "origin.test", tls.port, "connect", None),
        ("deny", "origin.test", tls.port, "connect",
         fronting_reason("evil.test", "origin.test"))]
    assert tls.requests_audit() == []
    only_tcp(tls)


def test_t1_any_other_server_name_is_refused_and_the_same_name_is_not(tls):
    """The SNI is compared after canonicalisation: a different name, a name
    for an IP-literal target, or a subdomain of the target are refused with
    unrecognized_name; the target's own name in another case is accepted."""
    ip = "127.0.0.1:%d" % tls.port
    ops = [tunnel(tls.host, tls={"sni": "evil.test"}),
           tunnel(tls.host, tls={"sni": "www.origin.test", "verify": False}),
           tunnel(ip, tls={"sni": "origin.test", "verify": False}),
           tunnel(tls.host, [{"path": "/case"}], tls={"sni": "ORIGIN.Test"})]
    out = tls.probe(tls.settings(), ops)
    for o in out[:3]:
        assert o["tls"]["ok"] is False and o["tls"]["reason"] == "TLSV1_UNRECOGNIZED_NAME", o
    assert out[3]["tls"]["ok"] and out[3]["responses"][0]["body"] == "hello GET /case\n"
    deny = [c for c in tls.connects() if c[0] == "deny"]
    assert deny == [
        ("deny", "origin.test", tls.port, "connect", fronting_reason("evil.test", "origin.test")),
        ("deny", "origin.test", tls.port, "connect",
         fronting_reason("www.origin.test", "origin.test")),
        ("deny", "127.0.0.1", tls.port, "connect", fronting_reason("origin.test", "127.0.0.1"))]
    tls.settle()
    assert [(e["ev"], e.get("sni")) for e in tls.reached()] == [("handshake", "origin.test"),
                                                               ("request", "origin.test")]


# ---------------------------------------------------------------------------
# T2: a Host inside TLS other than the CONNECT target

def test_t2_inner_host_other_than_the_target_is_421(tls):
    """SNI origin.test, then `Host: evil.test` (or evil.test on the same
    port, or origin.test on another port): 421 Misdirected Request with
    X-Proxy-Error host-mismatch and a body naming both; an audit deny per
    request; the origin gets the upstream handshake but no request."""
    p = tls.port
    hosts = ["evil.test", "evil.test:%d" % p, "origin.test:1"]
    named = ["evil.test:443", "evil.test:%d" % p, "origin.test:1"]
    out = tls.probe(tls.settings(), [tunnel(tls.host, [{"path": "/t2", "host": h}])
                                     for h in hosts])
    for o, n in zip(out, named):
        r = o["responses"][0]
        why = "the request names %s, not the CONNECT target %s" % (n, tls.host)
        assert (r["status"], r["reason"], header(r, "X-Proxy-Error")) == \
            (421, "Misdirected Request", "host-mismatch"), r
        assert r["body"] == "cordon: %s: %s\n" % (tls.host, why)
        assert header(r, "Connection") == "close"
    assert tls.requests_audit() == [
        ("deny", "GET", "origin.test", p, "/t2", 421,
         "the request names %s, not the CONNECT target %s" % (n, tls.host)) for n in named]
    tls.settle()
    assert tls.requests() == []
    assert [h["sni"] for h in tls.handshakes()] == ["origin.test"] * 3


def test_t2_absolute_form_inside_tls_is_refused(tls):
    """`GET https://evil.test/` inside the tunnel (Host naming the target)
    is refused (400) and recorded; it never reaches the origin."""
    raw = "GET https://evil.test:%d/ HTTP/1.1\r\nHost: %s\r\n\r\n" % (tls.port, tls.host)
    out = tls.probe(tls.settings(), [tunnel(tls.host, [{"raw": raw}])])
    r = out[0]["responses"][0]
    why = "absolute-form https:// target refused: use CONNECT for https"
    assert (r["status"], header(r, "X-Proxy-Error"), r["body"]) == \
        (400, "bad-request", "cordon: %s: %s\n" % (tls.host, why)), r
    assert tls.requests_audit() == [("deny", "-", "origin.test", tls.port, "", 400, why)]
    tls.settle()
    assert tls.requests() == []


# ---------------------------------------------------------------------------
# T18: h2c and CONNECT inside the tunnel

def test_t18_h2c_upgrade_and_connect_inside_the_tunnel_are_400(tls):
    """Inside the intercepted tunnel, `Upgrade: h2c` (with Connection:
    Upgrade) is refused with 400, and so is a CONNECT request (to another
    host or to the target itself); an `Upgrade: h2c` that Connection does
    not name is forwarded without it, as a plain request."""
    h = tls.host
    h2c = ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n" % h)
    conn_evil = "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n"
    conn_self = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (h, h)
    stray = "GET /stray HTTP/1.1\r\nHost: %s\r\nUpgrade: h2c\r\n\r\n" % h
    out = tls.probe(tls.settings(), [tunnel(h, [{"raw": x}])
                                     for x in (h2c, conn_evil, conn_self, stray)])
    answers = [o["responses"][0] for o in out]
    for r, why in zip(answers[:3], ["h2c upgrades are refused"] +
                      ["CONNECT inside an intercepted tunnel is refused"] * 2):
        assert (r["status"], r["reason"], header(r, "X-Proxy-Error")) == \
            (400, "Bad Request", "bad-request"), r
        assert r["body"] == "cordon: %s: %s\n" % (h, why)
    assert answers[3]["status"] == 200 and answers[3]["body"] == "hello GET /stray\n"
    p = tls.port
    assert tls.requests_audit() == [
        ("deny", "GET", "origin.test", p, "/", 400, "h2c upgrades are refused"),
        ("deny", "CONNECT", "origin.test", p, "*", 400, "CONNECT inside an intercepted tunnel"),
        ("deny", "CONNECT", "origin.test", p, "*", 400, "CONNECT inside an intercepted tunnel"),
        ("allow", "GET", "origin.test", p, "/stray", 200, None)]
    tls.settle()
    got = tls.requests()
    assert [e["line"] for e in got] == ["GET /stray HTTP/1.1"]
    assert not [k for k, _ in got[0]["headers"] if k.lower() == "upgrade"], got


# ---------------------------------------------------------------------------
# T23: non-TLS bytes in an intercepted tunnel

def not_tls_denied(tls, n):
    reason = "not TLS: this host's traffic is intercepted, and other bytes are refused"
    assert [c for c in tls.connects() if c[0] == "deny"] == \
        [("deny", "origin.test", tls.port, "connect", reason)] * n


def test_t23_raw_bytes_after_connect_are_refused(tls):
    """CONNECT, then bytes that are neither TLS nor HTTP (binary, a lower-case
    banner): the connection is closed without an answer, the audit denies
    the tunnel "not TLS", the origin never sees a handshake."""
    sends = [bytes(range(0, 64)), b"hello, raw protocol\r\n", b"\x80\x2e\x01\x03\x01"]
    out = tls.probe(tls.settings(), [{"op": "tunnel", "connect": tls.host, "send": s.hex()}
                                     for s in sends])
    for o in out:
        assert o["end"] in ("eof", "reset") and o["received"] == "", o
    not_tls_denied(tls, len(sends))
    assert tls.requests_audit() == []
    only_tcp(tls)


SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


def test_t23_ssh_banner_never_reaches_the_origin(tls):
    """CONNECT, then an SSH banner: whatever cordon answers, the connection
    ends, a deny is recorded, and the origin never sees a handshake."""
    out = tls.probe(tls.settings(), [{"op": "tunnel", "connect": tls.host,
                                      "send": SSH_BANNER.hex()}])
    assert out[0]["end"] in ("eof", "reset"), out
    denies = [r for r in tls.audit() if r["verdict"] == "deny"]
    assert len(denies) == 1, denies
    only_tcp(tls)


def test_t23_ssh_banner_is_refused_as_not_tls(tls):
    """T23 exactly: CONNECT origin.test:PORT, then an SSH banner: closed
    without an answer, audit net.connect deny "not TLS"."""
    out = tls.probe(tls.settings(), [{"op": "tunnel", "connect": tls.host,
                                      "send": SSH_BANNER.hex()}])
    assert out[0]["end"] in ("eof", "reset") and out[0]["received"] == "", out
    not_tls_denied(tls, 1)
    assert tls.requests_audit() == []
    only_tcp(tls)


def test_t23_plain_http_in_an_intercepted_tunnel_never_reaches_the_upstream_unrecorded(tls):
    """CONNECT origin.test:PORT (a TLS origin), then `GET /plain` in clear
    text with the right Host: either refused (a deny record, nothing sent
    upstream), or forwarded, and then recorded as a net.request and
    answered."""
    req = "GET /plain HTTP/1.1\r\nHost: %s\r\n\r\n" % tls.host
    out = tls.probe(tls.settings(), [{"op": "tunnel", "connect": tls.host,
                                      "send": req.encode().hex()}])
    tls.settle()
    reached = [e for e in tls.events("tls-error") if "http request" in e["error"]]
    if reached:
        assert [(r[1], r[4]) for r in tls.requests_audit()] == [("GET", "/plain")]
        assert bytes.fromhex(out[0]["received"]).startswith(b"HTTP/1.1 ")
    else:
        assert [r for r in tls.audit() if r["verdict"] == "deny"], tls.audit()


# ---------------------------------------------------------------------------
# T25: Encrypted Client Hello

def test_t25_control_the_hand_made_client_hello_is_accepted(tls):
    """Control for the ECH test: the same hand-made TLS 1.3 ClientHello
    without the ECH extension is answered with a ServerHello, so a refusal
    of the ECH one can only be about ECH."""
    out = tls.probe(tls.settings(), [{"op": "tunnel", "connect": tls.host, "first_record": True,
                                      "send": client_hello("origin.test").hex()}])
    assert first_record(out[0]["received"]) == ("handshake", 2), out  # ServerHello


def test_t25_client_hello_with_ech_is_refused(tls):
    """A TLS 1.3 ClientHello with SNI origin.test and an
    encrypted_client_hello extension (0xfe0d): refused with an alert
    (access_denied), audit deny naming ECH, no handshake at the origin."""
    out = tls.probe(tls.settings(), [{"op": "tunnel", "connect": tls.host, "first_record": True,
                                      "send": client_hello("origin.test", ech=True).hex()}])
    assert first_record(out[0]["received"]) == ("alert", 2, "access_denied"), out
    reason = ("TLS handshake with the client failed: the ClientHello carries Encrypted Client "
              "Hello, which would hide the real destination; ECH is refused")
    assert [c for c in tls.connects() if c[0] == "deny"] == \
        [("deny", "origin.test", tls.port, "connect", reason)]
    only_tcp(tls)


# ---------------------------------------------------------------------------
# requireHostMatch false

def test_require_host_match_false_lets_t1_and_t2_through_to_the_target_only(tls):
    """requireHostMatch false relaxes both checks: an SNI of evil.test gets
    a leaf for evil.test (no alert), and `Host: evil.test` inside is
    forwarded (no 421). What still holds: the traffic goes to the CONNECT
    target only, under its name: the origin's SNI is origin.test and the
    Host it receives is rewritten to origin.test:PORT; the audit names
    origin.test."""
    s = tls.settings(requireHostMatch=False)
    ops = [tunnel(tls.host, [{"path": "/t1"}], tls={"sni": "evil.test"}),
           tunnel(tls.host, [{"path": "/t2", "host": "evil.test"}])]
    out = tls.probe(s, ops)
    front = cert_info(base64.b64decode(out[0]["tls"]["cert"]))
    assert front["sans"] == ["DNS:evil.test"]
    assert front["issuer_cn"].startswith("cordon per-run CA ")
    assert [o["responses"][0]["body"] for o in out] == ["hello GET /t1\n", "hello GET /t2\n"]
    tls.settle()
    assert [(e["sni"], e["line"], e["host"]) for e in tls.requests()] == [
        ("origin.test", "GET /t1 HTTP/1.1", tls.host),
        ("origin.test", "GET /t2 HTTP/1.1", tls.host)]
    assert [c[0] for c in tls.connects()] == ["allow", "allow"]
    assert tls.requests_audit() == [
        ("allow", "GET", "origin.test", tls.port, "/t1", 200, None),
        ("allow", "GET", "origin.test", tls.port, "/t2", 200, None)]
