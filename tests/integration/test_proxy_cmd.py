"""`cordon proxy` (issue 14): the egress proxy alone, driven by a decider
(shared/reference/srt-compat.md 3.13) or by the settings file.

Every decider test runs twice, against `cordon proxy` and against srt
0.0.83's `srt proxy`, with the same decider (decider_lab.Decider) and the
same assertions: the same status, X-Deny-Reason, frames and stop reasons
from both shows that the two agree (test_frames_identical compares the raw
frames byte for byte). The srt half is skipped, with the reason, only when
srt cannot be found or installed (decider_lab.srt()).

Security checks assert the exact status, the X-Deny-Reason, that the
decider was (or was not) asked, that the upstream was never reached when a
request was refused, and, for cordon, the audit record.

Where the two differ on purpose (README, "cordon proxy"), the test says so
and checks each side's own answer.
"""
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import decider_lab as lab
from decider_lab import allow, deny, need_body

REPO = lab.REPO
CORDON_BIN = os.environ.get("CORDON_BIN", os.path.join(REPO, "build", "cordon"))
IMPLS = ["cordon", "srt"]


# ---------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def world():
    if not os.path.isfile(CORDON_BIN):
        pytest.fail("CORDON_BIN does not exist: " + CORDON_BIN)
    pki = lab.Pki()
    plain = lab.Origin(extra_headers=[("X-Secret-Token", "s1"), ("x_secret.token", "s2"),
                                      ("X-Keep", "k")])
    octx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    octx.load_cert_chain(pki.leaf, pki.leaf_key)
    tls = lab.Origin(ctx=octx)
    w = type("World", (), {})()
    w.pki, w.plain, w.tls = pki, plain, tls
    w.P, w.T = plain.port, tls.port
    w.base = "http://127.0.0.1:%d" % plain.port
    w.tdir = pki.dir
    # cordon trusts the origin through SSL_CERT_FILE, srt (Node) through
    # NODE_EXTRA_CA_CERTS: the same CA, each in its runtime's way
    w.env = dict(os.environ, SSL_CERT_FILE=pki.origin_ca, NODE_EXTRA_CA_CERTS=pki.origin_ca)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
              "SRT_DEBUG"):
        w.env.pop(k, None)
    w.hello = {"t": "hello", "proto": 1,
               "allowedDomains": ["127.0.0.1:%d" % plain.port, "127.0.0.1:%d" % tls.port,
                                  "localhost:%d" % tls.port, "*.example.test"],
               "deniedDomains": ["blocked.example.test"]}
    yield w
    plain.stop()
    tls.stop()
    pki.cleanup()


def need(impl):
    if impl == "srt":
        node, why = lab.srt()
        if node is None:
            pytest.skip("srt comparison skipped: " + why)


class Started:
    """Proxies a test started; stopped at its end."""

    def __init__(self, world, tmp_path):
        self.w = world
        self.tmp = tmp_path
        self.all = []

    def __call__(self, impl, policy=None, hello=None, ca=True, args=(), pipes=False,
                 wait_serving=True, lifeline=True):
        need(impl)
        dec = lab.Decider(self.w.hello if hello is None else hello, policy, pipes=pipes)
        audit = str(self.tmp / ("audit-%s-%d.jsonl" % (impl, len(self.all))))
        px = lab.Proxy(impl, dec, cordon_bin=CORDON_BIN,
                       ca_pem=self.w.pki.proxy_pem if ca else None, args=args, env=self.w.env,
                       audit=audit, wait_serving=wait_serving, lifeline=lifeline)
        self.all.append(px)
        return px, dec

    def stop(self):
        for px in self.all:
            px.stop()
            err = px.stderr()
            for m in lab.SANITIZER_MARKERS:
                assert m not in err, err


@pytest.fixture
def start(world, tmp_path):
    s = Started(world, tmp_path)
    yield s
    s.stop()


def policy_by_path(routes, default=None):
    """A decider answering by the request's path: routes maps a path to a
    function of the frame giving the reply frames; body frames go to
    routes["<body>"]."""
    def policy(f):
        if f is None:
            return []
        if f.get("t") == "body":
            return routes.get("<body>", lambda f: [allow(f)])(f)
        fn = routes.get(f.get("path"), default or (lambda f: [allow(f)]))
        return fn(f)
    return policy


def reqs(dec):
    return dec.got("req")


def audit_of(px, event=None, wait=True):
    """cordon's audit records (of one event); with wait, until there is one
    (a record is written as its exchange ends)."""
    if px.impl != "cordon":
        return []
    deadline = time.time() + (3 if wait else 0)
    while True:
        recs = [r for r in px.records() if event is None or r["event"] == event]
        if recs or time.time() >= deadline:
            return recs
        time.sleep(0.05)


def expect_refused(px, dec, r, status, code, origin, before, asked):
    """The answer, the reason code, whether the decider saw a req frame,
    and that nothing reached the origin."""
    assert r is not None, "no answer"
    assert r.status == status, r
    assert r.header("X-Deny-Reason") == code, r
    assert len(reqs(dec)) == asked, reqs(dec)
    time.sleep(0.05)
    assert len(origin.requests()) == before, origin.requests()[before:]


# ---------------------------------------------------------------------------
# frames: hello, req, verdict (allow), and what reaches the origin

@pytest.mark.parametrize("impl", IMPLS)
def test_hello_req_allow_plain(world, start, impl):
    px, dec = start(impl)
    raw = ("GET %s/a?x=1&y=%%41 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Multi: 1\r\nUser-Agent: t\r\n"
           "x-multi: 2\r\nX-Latin: caf\xe9\r\nConnection: close\r\n\r\n"
           % (world.base, world.P)).encode("latin-1")
    before = len(world.plain.requests())
    r = lab.request(px.port, raw)
    assert r.status == 200 and r.body == b"origin saw GET /a?x=1&y=%41\n", r
    frames = dec.raw()
    # the proxy speaks first, and says nothing but this
    assert frames[0] == b'{"t":"hello","proto":1}'
    want = {"t": "req", "id": 1, "method": "GET", "host": "127.0.0.1", "port": world.P,
            "hostHeader": "127.0.0.1:%d" % world.P, "path": "/a", "query": "x=1&y=%41",
            "headers": {"x-multi": ["1", "2"], "user-agent": ["t"], "x-latin": ["caf\u00e9"],
                        "connection": ["close"]}}
    assert frames[1] == json.dumps(want, separators=(",", ":"), ensure_ascii=False).encode()
    got = world.plain.requests()[before:]
    assert [g["target"] for g in got] == ["/a?x=1&y=%41"]
    if impl == "cordon":
        rec = audit_of(px, "net.request")[-1]
        assert rec["verdict"] == "allow" and rec["rule"] == "decider" and rec["status"] == 200
        assert rec["path"] == "/a?x=1&y=%41"


@pytest.mark.parametrize("impl", IMPLS)
def test_req_frame_tls_with_sni(world, start, impl):
    px, dec = start(impl)
    before = len(world.tls.requests())
    r = lab.get(px.port, "/t?q", tls="localhost:%d" % world.T, ca_file=world.pki.proxy_ca,
                headers=[("X-A", "1")])
    assert r.status == 200 and r.body == b"origin saw GET /t?q\n", r
    f = reqs(dec)[-1]
    assert f == {"t": "req", "id": 1, "method": "GET", "host": "localhost", "port": world.T,
                 "hostHeader": "localhost:%d" % world.T, "sni": "localhost", "path": "/t",
                 "query": "q", "headers": {"x-a": ["1"], "connection": ["close"]}}
    got = world.tls.requests()[before:]
    assert len(got) == 1 and got[0]["target"] == "/t?q"
    assert dict((k.lower(), v) for k, v in got[0]["headers"])["host"] == "localhost:%d" % world.T


@pytest.mark.parametrize("impl", IMPLS)
def test_verdict_header_edits_and_credential(world, start, impl):
    routes = {
        "/set": lambda f: [allow(f, setHeaders={"x-set": ["1", "2"], "x-empty": []},
                                 removeHeaders=["x-drop"])],
        "/cred": lambda f: [allow(f, cred="service", credential="tok-123")],
    }
    px, dec = start(impl, policy_by_path(routes))
    tgt = "127.0.0.1:%d" % world.T
    ca = world.pki.proxy_ca
    before = len(world.tls.requests())
    r = lab.get(px.port, "/set", tls=tgt, ca_file=ca,
                headers=[("X_Drop", "a"), ("x.drop", "b"), ("X-SET", "old"), ("x-empty", "e"),
                         ("X-Keep", "k")])
    assert r.status == 200, r
    r = lab.get(px.port, "/cred", tls=tgt, ca_file=ca,
                headers=[("Authorization", "Bearer mine"), ("X_API_KEY", "k"),
                         ("Cookie", "c=1"), ("X-Keep", "k")])
    assert r.status == 200, r
    got = world.tls.requests()[before:]
    h0 = [(k.lower(), v) for k, v in got[0]["headers"]]
    assert ("x-set", "1") in h0 and ("x-set", "2") in h0 and ("x-keep", "k") in h0
    # removeHeaders in every separator spelling; a set replaces the client's
    # value; a name set to no value changes nothing
    assert not any(k in ("x_drop", "x.drop") for k, _ in h0), h0
    assert ("x-empty", "e") in h0, h0
    assert [v for k, v in h0 if k == "x-set"] == ["1", "2"], h0
    h1 = [(k.lower(), v) for k, v in got[1]["headers"]]
    assert [v for k, v in h1 if k == "authorization"] == ["Bearer tok-123"], h1
    assert not any(k in ("x_api_key", "cookie") for k, _ in h1), h1


@pytest.mark.parametrize("impl", IMPLS)
def test_deny_verdict(world, start, impl):
    routes = {"/no": lambda f: [deny(f, 451, "not this one")],
              "/no-reason": lambda f: [deny(f, 403)]}
    px, dec = start(impl, policy_by_path(routes))
    before = len(world.plain.requests())
    r = lab.get(px.port, world.base + "/no")
    expect_refused(px, dec, r, 451, "decider", world.plain, before, 1)
    assert r.body == b"not this one\n"
    r = lab.get(px.port, "/no-reason", tls="127.0.0.1:%d" % world.T, ca_file=world.pki.proxy_ca)
    assert r.status == 403 and r.header("X-Deny-Reason") == "decider", r
    assert r.body == b"denied by sandbox policy\n"
    if impl == "cordon":
        recs = audit_of(px, "net.request")
        assert [(x["verdict"], x["status"], x.get("rule"), x.get("reason")) for x in recs[-2:]] == [
            ("deny", 451, "decider", "not this one"),
            ("deny", 403, "decider", "denied by sandbox policy")]
        # nothing was dialled for a denied request
        assert not [x for x in audit_of(px, "net.connect", wait=False) if x["verdict"] == "allow"]


# ---------------------------------------------------------------------------
# need_body and body

@pytest.mark.parametrize("impl", IMPLS)
def test_need_body_cut_and_shown(world, start, impl):
    seen = []

    def on_body(f):
        seen.append(f)
        data = base64.b64decode(f["data"])
        return [allow(f)] if data.startswith(b"ok") else [deny(f, 422, "body refused")]
    routes = {"/up": lambda f: [need_body(f, 10)], "<body>": on_body}
    px, dec = start(impl, policy_by_path(routes))
    tgt = "127.0.0.1:%d" % world.T
    before = len(world.tls.requests())
    # longer than max: the decider sees the first max bytes, cut; the origin all of them
    r = lab.get(px.port, "/up", tls=tgt, ca_file=world.pki.proxy_ca, method="POST",
                body=b"ok34567890abcdef")
    assert r.status == 200, r
    assert dec.raw()[-1] == b'{"t":"body","id":1,"data":"b2szNDU2Nzg5MA==","cut":true}'
    assert world.tls.requests()[-1]["body"] == b"ok34567890abcdef"
    # chunked, shorter than max: all of it, not cut
    raw = ("POST /up HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
           "\r\n2\r\nok\r\n3\r\nabc\r\n0\r\n\r\n" % tgt).encode()
    r = lab.request(px.port, raw, tls=tgt, ca_file=world.pki.proxy_ca)
    assert r.status == 200, r
    assert dec.raw()[-1] == b'{"t":"body","id":2,"data":"b2thYmM="}'
    assert world.tls.requests()[-1]["body"] == b"okabc"
    # a body the decider refuses never reaches the origin
    n = len(world.tls.requests())
    r = lab.get(px.port, "/up", tls=tgt, ca_file=world.pki.proxy_ca, method="PUT",
                body=b"no thanks")
    assert r.status == 422 and r.header("X-Deny-Reason") == "decider" and r.body == b"body refused\n"
    assert dec.raw()[-1] == b'{"t":"body","id":3,"data":"bm8gdGhhbmtz"}'
    time.sleep(0.05)
    assert len(world.tls.requests()) == n
    # a GET without a body is shown an empty one
    r = lab.get(px.port, "/up", tls=tgt, ca_file=world.pki.proxy_ca)
    assert dec.raw()[-1] == b'{"t":"body","id":4,"data":""}'
    assert r.status == 422  # "" does not start with "ok"
    assert len(world.tls.requests()) - before == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_curl_expect_continue_need_body(world, start, impl, tmp_path):
    """curl with Expect: 100-continue waits for a 100 before its body: a
    need_body must not wait for curl while curl waits for it."""
    routes = {"/e": lambda f: [need_body(f, 100)]}
    px, dec = start(impl, policy_by_path(routes))
    body = tmp_path / "body"
    body.write_bytes(b"y" * 2048)
    t0 = time.time()
    p = subprocess.run(["curl", "-sS", "--noproxy", "", "-x", "http://127.0.0.1:%d" % px.port,
                        "-H", "Expect: 100-continue", "--expect100-timeout", "20",
                        "--data-binary", "@%s" % body, world.base + "/e",
                        "-o", "/dev/null", "-w", "%{http_code}"],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout == "200", (p.stdout, p.stderr)
    assert time.time() - t0 < 10
    assert dec.got("body")[-1] == {"t": "body", "id": 1,
                                   "data": base64.b64encode(b"y" * 100).decode(), "cut": True}
    assert world.plain.requests()[-1]["body"] == b"y" * 2048


@pytest.mark.parametrize("impl", IMPLS)
def test_bodyless_method_body(world, start, impl):
    routes = {"/g": lambda f: [need_body(f, 100)]}
    px, dec = start(impl, policy_by_path(routes))
    before = len(world.tls.requests())
    r = lab.get(px.port, "/g", tls="127.0.0.1:%d" % world.T, ca_file=world.pki.proxy_ca,
                method="GET", body=b"hidden")
    expect_refused(px, dec, r, 403, "bodyless_method_body", world.tls, before, 1)
    assert not dec.got("body")  # the body was never shown, so never forwarded
    if impl == "cordon":
        rec = audit_of(px, "net.request")[-1]
        assert rec["verdict"] == "deny" and rec["status"] == 403 and rec["method"] == "GET"


@pytest.mark.parametrize("impl", IMPLS)
def test_deny_while_body_is_read(world, start, impl):
    """need_body, then a deny before the body is complete: answered at once.
    (The deny comes a moment after the need_body: srt takes a deny in the
    same read as its need_body for a verdict nothing waits on.)"""
    def slow(f):
        threading.Timer(0.3, lambda: dec.send(deny(f, 409, "changed my mind"))).start()
        return [need_body(f, 1 << 20)]
    routes = {"/slow": slow}
    px, dec = start(impl, policy_by_path(routes))
    before = len(world.plain.requests())
    s = lab.connect(px.port)
    try:
        s.sendall(("POST %s/slow HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 100\r\n"
                   "Connection: close\r\n\r\nonly part" % (world.base, world.P)).encode())
        r = lab._read_response(s)
    finally:
        s.close()
    expect_refused(px, dec, r, 409, "decider", world.plain, before, 1)
    assert not dec.got("body")


@pytest.mark.parametrize("impl", IMPLS)
def test_held_bodies_limit(world, start, impl):
    """Bodies held for the decider at once are capped (2 x 32 MiB): a
    need_body past it is refused (503) rather than queued."""
    routes = {"/big": lambda f: [need_body(f, 32 << 20)]}
    px, dec = start(impl, policy_by_path(routes))
    socks = []
    try:
        for _ in range(2):  # two uploads of unknown length that never end
            s = lab.connect(px.port)
            s.sendall(("POST %s/big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nTransfer-Encoding: chunked"
                       "\r\n\r\n5\r\nhello\r\n" % (world.base, world.P)).encode())
            socks.append(s)
        assert dec.wait(lambda d: len(d.got("req")) == 2)
        time.sleep(0.3)
        before = len(world.plain.requests())
        r = lab.get(px.port, world.base + "/big", method="POST", body=b"abc")
        assert r.status == 503 and r.header("X-Deny-Reason") == "decider_unavailable", r
        assert r.body == b"request decider: too many request bodies held for inspection\n"
        assert len(world.plain.requests()) == before
        # without need_body, requests still go
        r = lab.get(px.port, world.base + "/small", method="POST", body=b"abc")
        assert r.status == 200, r
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------
# refusals the proxy makes itself: each reason code

@pytest.mark.parametrize("impl", IMPLS)
def test_host_not_allowed(world, start, impl):
    px, dec = start(impl)
    before = len(world.plain.requests())
    r = lab.get(px.port, "http://127.0.0.1:1/x")
    expect_refused(px, dec, r, 403, "host_not_allowed", world.plain, before, 0)
    # deniedDomains wins over a wildcard allow; CONNECT is refused the same way
    s, refusal = lab.tunnel(px.port, "blocked.example.test:443", world.pki.proxy_ca)
    assert s is None and refusal.status == 403
    assert refusal.header("X-Deny-Reason") == "host_not_allowed"
    assert not reqs(dec)
    if impl == "cordon":
        recs = audit_of(px, "net.connect")
        assert [(x["verdict"], x["host"], x.get("rule")) for x in recs[-2:]] == [
            ("deny", "127.0.0.1", None), ("deny", "blocked.example.test", "blocked.example.test")]


@pytest.mark.parametrize("impl", IMPLS)
def test_opaque_tunnel_without_ca(world, start, impl):
    px, dec = start(impl, ca=False)
    before = world.tls.accepts
    s, refusal = lab.tunnel(px.port, "127.0.0.1:%d" % world.T, world.pki.proxy_ca)
    assert s is None and refusal.status == 403, refusal
    assert refusal.header("X-Deny-Reason") == "opaque_tunnel"
    assert world.tls.accepts == before and not reqs(dec)


@pytest.mark.parametrize("impl", IMPLS)
def test_method_misdirected_bad_request(world, start, impl):
    px, dec = start(impl)
    tgt = "127.0.0.1:%d" % world.T
    ca = world.pki.proxy_ca
    before_p, before_t = len(world.plain.requests()), len(world.tls.requests())
    # TRACE would echo what the proxy added: refused before the decider is asked
    r = lab.get(px.port, world.base + "/x", method="TRACE")
    assert (r.status, r.header("X-Deny-Reason")) == (405, "method_refused"), r
    assert r.body == b"the TRACE method is not forwarded\n"
    # the Host header must name the destination (plain, and inside the tunnel)
    r = lab.get(px.port, world.base + "/x", host="other.example.test")
    assert (r.status, r.header("X-Deny-Reason")) == (421, "misdirected"), r
    r = lab.get(px.port, "/x", tls=tgt, ca_file=ca, host="127.0.0.1:1")
    assert (r.status, r.header("X-Deny-Reason")) == (421, "misdirected"), r
    # a target that is not plain origin form
    r = lab.get(px.port, world.base + "//x")
    assert (r.status, r.header("X-Deny-Reason")) == (400, "bad_request"), r
    assert r.body == b"malformed request-target\n"
    r = lab.get(px.port, "http://127.0.0.1:%d/x" % world.P, host="127.0.0.1:%d" % world.P,
                headers=[("X-Ctl", "a\x85b")])
    assert (r.status, r.header("X-Deny-Reason")) == (400, "bad_request"), r
    assert not reqs(dec)
    time.sleep(0.05)
    assert len(world.plain.requests()) == before_p and len(world.tls.requests()) == before_t
    if impl == "cordon":
        recs = audit_of(px, "net.request")
        assert [(x["verdict"], x["status"]) for x in recs[-5:]] == [
            ("deny", 405), ("deny", 421), ("deny", 421), ("deny", 400), ("deny", 400)]


@pytest.mark.parametrize("impl", IMPLS)
def test_limits_of_a_req(world, start, impl):
    """A request the req frame cannot carry within the protocol's limits is
    refused (400) without asking."""
    px, dec = start(impl)
    before = len(world.plain.requests())
    long_path = "/" + "a" * 8192       # path over 8 KiB
    r = lab.get(px.port, world.base + long_path)
    assert (r.status, r.header("X-Deny-Reason")) == (400, "bad_request"), r
    assert r.body == b"request target too large\n"
    ok_path = "/" + "a" * 8191         # exactly 8 KiB: asked
    r = lab.get(px.port, world.base + ok_path)
    assert r.status == 200, r
    assert reqs(dec)[-1]["path"] == ok_path
    # 150 header values: asked (cordon's parser allowed only 128 fields once)
    mid = [("X-M%d" % i, "v") for i in range(150)]
    r = lab.get(px.port, world.base + "/mid", headers=mid)
    assert r.status == 200, r
    assert reqs(dec)[-1]["path"] == "/mid"
    assert len(reqs(dec)[-1]["headers"]) >= 150
    # more than 190 header values; more than 64 KiB of headers
    many = [("X-H%d" % i, "v") for i in range(191)]
    r = lab.get(px.port, world.base + "/many", headers=many)
    assert (r.status, r.header("X-Deny-Reason")) == (400, "bad_request"), r
    big = [("X-Big%d" % i, "v" * 8000) for i in range(9)]
    r = lab.get(px.port, world.base + "/big", headers=big)
    assert (r.status, r.header("X-Deny-Reason")) == (400, "bad_request"), r
    assert len(reqs(dec)) == 2
    time.sleep(0.05)
    assert len(world.plain.requests()) == before + 2


@pytest.mark.parametrize("impl", IMPLS)
def test_plaintext_header_set(world, start, impl):
    routes = {"/h": lambda f: [allow(f, setHeaders={"x-added": ["v"]})],
              "/c": lambda f: [allow(f, cred="x", credential="secret-value")]}
    px, dec = start(impl, policy_by_path(routes))
    before = len(world.plain.requests())
    r = lab.get(px.port, world.base + "/h")
    expect_refused(px, dec, r, 403, "plaintext_header_set", world.plain, before, 1)
    # a credential is a header set too: never in cleartext unless allowed
    r = lab.get(px.port, world.base + "/c")
    expect_refused(px, dec, r, 403, "plaintext_header_set", world.plain, before, 2)
    px2, dec2 = start(impl, policy_by_path(routes), args=["--plaintext-header-set"])
    r = lab.get(px2.port, world.base + "/h")
    assert r.status == 200, r
    assert ("x-added", "v") in [(k.lower(), v) for k, v in world.plain.requests()[-1]["headers"]]


@pytest.mark.parametrize("impl", IMPLS)
def test_address_not_allowed(world, start, impl):
    """An allowed name that resolves to a refused address is not dialled,
    after the decider allowed the request."""
    hello = {"t": "hello", "proto": 1, "allowedDomains": ["localhost:%d" % world.P],
             "deniedDomains": ["127.0.0.1", "[::1]"]}
    px, dec = start(impl, hello=hello)
    before, acc = len(world.plain.requests()), world.plain.accepts
    r = lab.get(px.port, "http://localhost:%d/x" % world.P)
    assert (r.status, r.header("X-Deny-Reason")) == (403, "address_not_allowed"), r
    assert len(reqs(dec)) == 1
    time.sleep(0.05)
    assert len(world.plain.requests()) == before and world.plain.accepts == acc
    if impl == "cordon":
        rec = audit_of(px, "net.connect")[-1]
        assert rec["verdict"] == "deny" and rec["host"] == "localhost"
        assert rec["address"] == "127.0.0.1"


@pytest.mark.parametrize("impl", IMPLS)
def test_too_many_tunnels(world, start, impl):
    """256 TLS-terminated tunnels at once; the next CONNECT gets 503."""
    px, dec = start(impl)
    held = []
    try:
        tgt = "127.0.0.1:%d" % world.T
        for i in range(256):
            s = lab.connect(px.port)
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (tgt, tgt)).encode())
            held.append(s)
        for s in held:  # every one was taken (200), and holds its slot
            r = lab._read_response(s, method="CONNECT")
            assert r is not None and r.status == 200, r
        s, refusal = lab.tunnel(px.port, tgt, world.pki.proxy_ca)
        assert s is None and refusal.status == 503, refusal
        assert refusal.header("X-Deny-Reason") == "too_many_tunnels"
    finally:
        for s in held:
            s.close()
    # the slots come back
    deadline = time.time() + 5
    while True:
        r = lab.get(px.port, "/after", tls="127.0.0.1:%d" % world.T, ca_file=world.pki.proxy_ca)
        if r.status == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 200, r


@pytest.mark.parametrize("impl", IMPLS)
def test_strip_response_header(world, start, impl):
    px, dec = start(impl, args=["--strip-response-header", "X-SECRET-TOKEN", "unused-name"])
    r = lab.get(px.port, world.base + "/s")
    assert r.status == 200, r
    names = [k.lower() for k, _ in r.headers]
    assert "x-keep" in names
    assert "x-secret-token" not in names and "x_secret.token" not in names, r.headers


# ---------------------------------------------------------------------------
# the decider unavailable: a timeout, a dead link, protocol violations

@pytest.mark.parametrize("impl", IMPLS)
def test_verdict_timeout_and_late_verdict(world, start, impl):
    """No verdict in 5 s: 503 decider_unavailable; the late verdict is then
    dropped silently and the proxy goes on."""
    late = []

    def silent(f):
        late.append(f)
        return []
    px, dec = start(impl, policy_by_path({"/silent": silent}))
    before = len(world.plain.requests())
    t0 = time.time()
    r = lab.get(px.port, world.base + "/silent")
    took = time.time() - t0
    expect_refused(px, dec, r, 503, "decider_unavailable", world.plain, before, 1)
    assert r.body == b"request decider: decider timed out\n"
    assert 4.5 <= took < 8, took
    dec.send(allow(late[0]))   # too late: dropped, not a violation
    r = lab.get(px.port, world.base + "/next")
    assert r.status == 200, r
    assert px.proc.poll() is None


VIOLATIONS = [
    # (name, what the decider sends for the first req, srt's reason)
    ("unknown key", lambda f: [dict(allow(f), extra=1)], "bad verdict frame"),
    ("empty optional", lambda f: [allow(f, setHeaders={})], "bad verdict frame"),
    ("upper-case header name", lambda f: [allow(f, setHeaders={"X-A": ["1"]})],
     "bad verdict frame"),
    ("framing header set", lambda f: [allow(f, setHeaders={"content-length": ["1"]})],
     "bad verdict frame"),
    ("status out of range", lambda f: [deny(f, 399)], "bad verdict frame"),
    ("need_body over 32 MiB", lambda f: [need_body(f, (32 << 20) + 1)], "bad verdict frame"),
    ("null", lambda f: [b'{"t":"verdict","id":%d,"action":"deny","status":403,"reason":null}'
                        % f["id"]], "null in frame"),
    ("duplicate key", lambda f: [b'{"t":"verdict","id":%d,"id":%d,"action":"allow"}'
                                 % (f["id"], f["id"])], "duplicate key in frame"),
    ("not UTF-8", lambda f: [b'{"t":"verdict","id":1,"action":"deny","status":403,'
                             b'"reason":"\xff"}'], "frame is not UTF-8"),
    ("not JSON", lambda f: [b'{"t":"verdict",'], "frame is not valid JSON"),
    ("not an object", lambda f: [b'[1]'], "frame is not one JSON object"),
    ("lone surrogate", lambda f: [b'{"t":"verdict","id":%d,"action":"deny","status":403,'
                                  b'"reason":"\\ud800"}' % f["id"]], "lone surrogate in frame"),
    ("oversized frame", lambda f: [b"\x00" * 16], "oversized frame"),
    ("unknown id", lambda f: [allow(dict(f, id=f["id"] + 5))],
     "verdict for id 6, which nothing waits on"),
    ("two verdicts", lambda f: [allow(f), allow(f)], "verdict for id 1, which nothing waits on"),
    ("second need_body", None, "a second need_body"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,answer,why", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_protocol_violation_stops_the_proxy(world, start, impl, name, answer, why):
    if name == "second need_body":
        def policy(f):
            return [need_body(f, 10)]
    elif name == "oversized frame":
        def policy(f):
            # a length past 1 MiB: refused before anything of it is read
            return [lab.raw_length((1 << 20) + 1)]
    else:
        def policy(f):
            return answer(f) if f and f.get("t") == "req" else []
    px, dec = start(impl, policy)
    before = len(world.plain.requests())
    r = lab.get(px.port, world.base + "/v", method="POST", body=b"x")
    if name != "two verdicts":
        # the request waiting on the link is refused
        assert r is not None and r.status == 503, r
        assert r.header("X-Deny-Reason") == "decider_unavailable"
        # (a second need_body is worded apart for the request, as srt does)
        said = "decider broke the protocol" if name == "second need_body" else why
        assert r.body == ("request decider: %s\n" % said).encode(), r.body
        assert len(world.plain.requests()) == before
    rc = px.wait(15)
    assert "stopped (decider: %s)" % why in px.stderr(), px.stderr()
    # srt exits 0 whatever ended the link; cordon 1 when the decider broke
    # the protocol (README, "cordon proxy")
    assert rc == (1 if impl == "cordon" else 0), px.stderr()


@pytest.mark.parametrize("impl", IMPLS)
def test_decider_ends_stream(world, start, impl):
    px, dec = start(impl)
    assert lab.get(px.port, world.base + "/ok").status == 200
    dec.shutdown_write()
    assert px.wait(15) == 0
    assert "stopped (decider: decider closed the stream)" in px.stderr(), px.stderr()


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_hello(world, start, impl):
    """A hello that breaks the schema: nothing is served."""
    hello = {"t": "hello", "proto": 1, "allowedDomains": ["Example.com"], "deniedDomains": []}
    px, dec = start(impl, hello=hello, wait_serving=False)
    rc = px.wait(15)
    assert "decider unavailable: bad hello" in px.stderr(), px.stderr()
    assert "serving" not in px.stderr()
    # srt exits 2 (as for an argument); cordon 1, a start-up failure
    assert rc == (1 if impl == "cordon" else 2)


# ---------------------------------------------------------------------------
# the lifeline, signals, pipes, fds

@pytest.mark.parametrize("impl", IMPLS)
def test_lifeline(world, start, impl):
    px, dec = start(impl)
    assert lab.get(px.port, world.base + "/ok").status == 200
    os.write(px.lifeline_w, b"anything written is ignored\n")
    time.sleep(0.1)
    assert px.proc.poll() is None
    px.cut_lifeline()
    assert px.wait(15) == 0
    assert "stopped (lifeline closed)" in px.stderr(), px.stderr()
    with pytest.raises(OSError):  # the listener is gone
        socket.create_connection(("127.0.0.1", px.port), timeout=2)


@pytest.mark.parametrize("impl", IMPLS)
def test_sigterm(world, start, impl):
    px, dec = start(impl)
    px.proc.send_signal(signal.SIGTERM)
    assert px.wait(15) == 0
    assert "stopped (SIGTERM)" in px.stderr(), px.stderr()


@pytest.mark.parametrize("impl", IMPLS)
def test_decider_in_and_out(world, start, impl):
    """--decider-in and --decider-out: one stream each way (here two socket
    pairs, one direction of each used)."""
    px, dec = start(impl, pipes="sockets")
    r = lab.get(px.port, world.base + "/split")
    assert r.status == 200, r
    assert reqs(dec)[-1]["path"] == "/split"


def test_decider_on_pipes(world, start):
    """A pair of real pipes, as srt documents them. (srt 0.0.83 on Node
    cannot use them: it reads its output pipe and dies with "write error:
    read ENOTCONN"; README, "cordon proxy".)"""
    px, dec = start("cordon", pipes=True)
    r = lab.get(px.port, world.base + "/piped")
    assert r.status == 200, r
    assert reqs(dec)[-1]["path"] == "/piped"


def test_listen_fd(world, start):
    """--listen-fd: a socket the host bound and listens on."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    port = ls.getsockname()[1]
    dec = lab.Decider(world.hello)
    r, w = os.pipe()
    p = subprocess.Popen([CORDON_BIN, "proxy", "--listen-fd", str(ls.fileno()), "--lifeline-fd",
                          str(r)] + dec.args, pass_fds=[ls.fileno(), r] + list(dec.proxy_fds),
                         stderr=subprocess.PIPE, env=world.env)
    os.close(r)
    ls.close()
    dec.started()
    try:
        assert dec.wait(lambda d: len(d.frames) >= 1)
        deadline = time.time() + 10
        resp = None
        while time.time() < deadline:
            resp = lab.get(port, world.base + "/fd")
            if resp is not None:
                break
            time.sleep(0.05)
        assert resp.status == 200, resp
    finally:
        os.close(w)
        p.wait(10)
        err = p.stderr.read().decode()
        dec.close()
    assert "serving fd" in err and "stopped (lifeline closed)" in err, err
    assert p.returncode == 0


# ---------------------------------------------------------------------------
# arguments and exit codes

ARG_CASES = [
    (["--decider-fd", "{d}"], "--listen-fd (or --listen for development) is required"),
    (["--listen", "0.0.0.0:0", "--decider-fd", "{d}"], "is not a loopback address"),
    (["--listen", "127.0.0.1:99999", "--decider-fd", "{d}"], "--listen needs <host:port>"),
    (["--listen", "127.0.0.1", "--decider-fd", "{d}"], "--listen needs <host:port>"),
    (["--listen", "127.0.0.1:0", "--bogus"], "unknown option"),
    (["--listen", "127.0.0.1:0", "--decider-in", "{d}"], None),
    (["--listen", "127.0.0.1:0", "--decider-fd", "{d}", "--ca-fd", "{g}"],
     "needs a private key and a certificate"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("args,msg", ARG_CASES)
def test_argument_errors(world, impl, args, msg):
    need(impl)
    a, b = socket.socketpair()
    r, w = os.pipe()
    os.write(w, b"not a PEM")
    os.close(w)
    args = [x.format(d=b.fileno(), g=r) for x in args]
    cmd = [CORDON_BIN, "proxy"] if impl == "cordon" else list(lab.srt()) + ["proxy"]
    p = subprocess.run(cmd + args, pass_fds=[b.fileno(), r], capture_output=True, text=True,
                       timeout=30, env=world.env)
    a.close()
    b.close()
    os.close(r)
    assert p.returncode == 2, (p.returncode, p.stderr)
    if msg:
        assert msg in p.stderr, p.stderr
    assert not a_decider_was_greeted(p)


def a_decider_was_greeted(p):
    return "serving" in p.stderr


def test_cordon_argument_details(world):
    """cordon's own checks: an fd that is not open, a decider flag without its
    pair, --settings with a decider, and --version and --help."""
    def run(*args):
        return subprocess.run([CORDON_BIN, "proxy"] + list(args), capture_output=True,
                              text=True, timeout=30, env=world.env)
    p = run("--listen", "127.0.0.1:0", "--decider-fd", "987")
    assert p.returncode == 2 and "987: not an open file descriptor" in p.stderr, p.stderr
    p = run("--listen", "127.0.0.1:0", "--decider-fd", "3x")
    assert p.returncode == 2 and "not a file descriptor number" in p.stderr, p.stderr
    p = run("--listen", "127.0.0.1:0", "--decider-fd", "2", "-s", "/nonexistent")
    assert p.returncode == 2 and "no settings file is read" in p.stderr, p.stderr
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("cordon-proxy "), p.stdout
    p = run("--help")
    assert p.returncode == 0 and "--decider-fd" in p.stdout and "--lifeline-fd" in p.stdout
    # a listener that cannot be bound is a start-up failure (1)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        p = run("--listen", "127.0.0.1:%d" % busy.getsockname()[1], "-s", "/dev/null")
        assert p.returncode == 2, p.stderr  # an empty settings file: refused first
        good = os.path.join(world.tdir, "empty-settings.json")
        with open(good, "w") as f:
            json.dump({"network": {"allowedDomains": []}, "filesystem": {}}, f)
        p = run("--listen", "127.0.0.1:%d" % busy.getsockname()[1], "-s", good)
        assert p.returncode == 1 and "Address already in use" in p.stderr, p.stderr
    finally:
        busy.close()


# ---------------------------------------------------------------------------
# the two agree, frame for frame

def test_frames_identical(world, start):
    """The same requests through cordon and srt give the decider the same
    bytes: hello, every req frame and every body frame."""
    need("srt")
    routes = {"/body": lambda f: [need_body(f, 8)]}
    out = {}
    for impl in IMPLS:
        px, dec = start(impl, policy_by_path(routes))
        tgt = "127.0.0.1:%d" % world.T
        ca = world.pki.proxy_ca
        lab.get(px.port, world.base + "/p?a=1&b=%20", headers=[("Accept", "*/*"), ("X-Tab", "a\tb"),
                                                                ("X-Quote", 'say "hi" \\o/')])
        lab.request(px.port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                              % (world.base, world.P)).encode())
        lab.request(px.port, ("GET %s/x HTTP/1.0\r\n\r\n" % world.base).encode())
        lab.get(px.port, "/body", tls=tgt, ca_file=ca, method="POST", body=b"\x00\x01binary\xff!")
        lab.get(px.port, "/body", tls="localhost:%d" % world.T, ca_file=ca, method="DELETE",
                body=b"12345678")
        lab.get(px.port, "/q?", tls=tgt, ca_file=ca, headers=[("X-Utf8", "\u00e9".encode().decode("latin-1"))])
        out[impl] = dec.raw()
    assert len(out["cordon"]) == len(out["srt"]) == 9, out
    # ports differ only by the origins', which are the same: compare whole
    for c, s in zip(out["cordon"], out["srt"]):
        assert c == s


# ---------------------------------------------------------------------------
# without a decider: the settings file decides

def test_settings_decide_without_decider(world, tmp_path):
    settings = tmp_path / "egress.json"
    settings.write_text(json.dumps({
        "network": {"allowedDomains": ["127.0.0.1:%d" % world.P],
                    "deniedDomains": [], "requestRules": [
                        {"host": "127.0.0.1:%d" % world.P, "allow": ["GET /ok/**"]}]},
        "filesystem": {}}))
    audit = tmp_path / "audit.jsonl"
    px = lab.Proxy("cordon", None, cordon_bin=CORDON_BIN, args=["-s", str(settings)],
                   env=world.env, audit=str(audit))
    try:
        before = len(world.plain.requests())
        r = lab.get(px.port, world.base + "/ok/1")
        assert r.status == 200, r
        r = lab.get(px.port, world.base + "/secret")
        assert r.status == 403 and r.header("X-Proxy-Error") == "blocked-by-rule", r
        r = lab.get(px.port, "http://127.0.0.1:1/x")
        assert r.status == 403 and r.header("X-Proxy-Error") == "blocked-port", r
        r = lab.get(px.port, "http://localhost:%d/x" % world.P)
        assert r.status == 403 and r.header("X-Proxy-Error") == "blocked-by-allowlist", r
        time.sleep(0.05)
        assert [g["target"] for g in world.plain.requests()[before:]] == ["/ok/1"]
    finally:
        px.stop()
    recs = [json.loads(l) for l in audit.read_text().splitlines()]
    reqs_ = [(x["verdict"], x["path"], x["status"]) for x in recs if x["event"] == "net.request"]
    assert reqs_ == [("allow", "/ok/1", 200), ("deny", "/secret", 403)]
    assert ("deny", 1) in [(x["verdict"], x["port"]) for x in recs if x["event"] == "net.connect"]
    assert px.proc.returncode == 0
    for m in lab.SANITIZER_MARKERS:
        assert m not in px.stderr()
