"""TLS interception (network.tlsTerminate): what reaches the origin, the
certificate the client sees, excluded hosts, and the knobs (maxTunnels,
handshakeTimeoutMs, refuseOpaqueTunnels, stripResponseHeaders, upstream
verification).

The origin is tls_lab's HTTPS server on the host's 127.0.0.1, reached by
name through network.hosts (origin.test, excluded.test), with a certificate
from a test CA that cordon trusts through network.upstreamCaFile. It logs
every handshake and request, so each test asserts what reached it. Clients
run inside cordon and use only what cordon gives them (HTTPS_PROXY and
friends, SSL_CERT_FILE, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE,
NODE_EXTRA_CA_CERTS, NODE_USE_ENV_PROXY). Every test runs as root and as
uid 65534.
"""
import base64
import json
import os
import subprocess

import pytest

import tls_lab
from tls_lab import PY, Tls, cert_info, det_bytes, first_pem_cert, header, sha256, signed_by

MIB = 1 << 20
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_HEADERS = [["Connection", "Upgrade"], ["Upgrade", "websocket"],
              ["Sec-WebSocket-Key", WS_KEY], ["Sec-WebSocket-Version", "13"]]


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


def leaf(res):
    assert res["tls"]["ok"], res
    return cert_info(base64.b64decode(res["tls"]["cert"]))


# ---------------------------------------------------------------------------
# requests arrive intact

def test_requests_arrive_intact_through_interception(tls):
    """GET, POST with a 3 MiB body, a chunked 2 MiB upload, HEAD, a 1 MiB
    download and a last GET, all on one kept-alive connection (one
    handshake and one upstream connection at the origin), then a WebSocket
    upgrade to 101 whose bytes are relayed both ways."""
    big, chunked, down = 3 * MIB + 7, 2 * MIB + 3, MIB
    reqs = [{"path": "/first"},
            {"method": "POST", "path": "/echo", "body_gen": big,
             "headers": [["Content-Type", "application/octet-stream"]]},
            {"method": "POST", "path": "/echo", "body_gen": chunked,
             "chunked": [1, 7, 4096, 65536, 100003]},
            {"method": "HEAD", "path": "/head"},
            {"path": "/size/%d" % down},
            {"path": "/last"}]
    ws = {"path": "/ws", "headers": WS_HEADERS, "ws": "ping through the tunnel"}
    out = tls.probe(tls.settings(), [tunnel(tls.host, reqs), tunnel(tls.host, [ws])])
    tls.settle()
    r = out[0]["responses"]
    assert [x["status"] for x in r] == [200] * 6, r
    assert r[0]["body"] == "hello GET /first\n"
    assert json.loads(r[1]["body"]) == {"len": big, "sha256": sha256(det_bytes(big)),
                                        "te": None, "cl": str(big)}
    assert json.loads(r[2]["body"]) == {"len": chunked, "sha256": sha256(det_bytes(chunked)),
                                        "te": "chunked", "cl": None}
    assert r[3]["len"] == 0 and header(r[3], "Content-Length") == str(len("hello HEAD /head\n"))
    assert r[4]["len"] == down and r[4]["sha256"] == sha256(det_bytes(down)) == \
        header(r[4], "X-Body-Sha256")
    assert r[5]["body"] == "hello GET /last\n"
    w = out[1]["responses"][0]
    assert w["status"] == 101 and header(w, "Upgrade") == "websocket", w
    assert w["echo"] == "ping through the tunnel"

    # the origin: two handshakes (SNI origin.test, ALPN http/1.1), every
    # request as sent, the first six on one connection
    hs = tls.handshakes()
    assert [(h["sni"], h["alpn"]) for h in hs] == [("origin.test", "http/1.1")] * 2, hs
    got = tls.requests()
    assert [e["line"] for e in got] == [
        "GET /first HTTP/1.1", "POST /echo HTTP/1.1", "POST /echo HTTP/1.1",
        "HEAD /head HTTP/1.1", "GET /size/%d HTTP/1.1" % down, "GET /last HTTP/1.1",
        "GET /ws HTTP/1.1"]
    assert {e["host"] for e in got} == {tls.host} and {e["sni"] for e in got} == {"origin.test"}
    assert len({e["conn"] for e in got[:6]}) == 1 and got[6]["conn"] != got[0]["conn"]
    assert (got[1]["framing"], got[1]["len"], got[1]["sha256"]) == \
        ("length", big, sha256(det_bytes(big)))
    assert (got[2]["framing"], got[2]["len"], got[2]["sha256"]) == \
        ("chunked", chunked, sha256(det_bytes(chunked)))
    assert tls.events("upgraded")[0]["received"] == "ping through the tunnel"

    # the audit: one allowed tunnel each, one record per request
    port = tls.port
    assert [c[:4] for c in tls.connects()] == [("allow", "origin.test", port, "connect")] * 2
    assert all(r["address"] == "127.0.0.1" and r["rule"] == tls.host
               for r in tls.audit("net.connect"))
    assert tls.requests_audit() == [
        ("allow", "GET", "origin.test", port, "/first", 200, None),
        ("allow", "POST", "origin.test", port, "/echo", 200, None),
        ("allow", "POST", "origin.test", port, "/echo", 200, None),
        ("allow", "HEAD", "origin.test", port, "/head", 200, None),
        ("allow", "GET", "origin.test", port, "/size/%d" % down, 200, None),
        ("allow", "GET", "origin.test", port, "/last", 200, None),
        ("allow", "GET", "origin.test", port, "/ws", 101, None)]


def test_leaf_is_ecdsa_p256_for_the_host_from_the_per_run_ca(tls):
    """The client sees a leaf issued by cordon's per-run CA (the first block
    of /dev/cordon-ca.pem, which /etc/ssl/certs/ca-certificates.crt and the
    CA variables name): ECDSA P-256, SAN exactly the host (an IP SAN for an
    IP-literal target), 7 days, not a CA, cached per name. ALPN is http/1.1
    even when the client offers h2 first, none when it offers only h2; and
    cordon offers only http/1.1 upstream, although this origin prefers h2."""
    ip = "127.0.0.1:%d" % tls.port
    env_names = ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                 "GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE", "CARGO_HTTP_CAINFO", "DENO_CERT",
                 "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", "NIX_SSL_CERT_FILE"]
    ops = [{"op": "read", "path": tls_lab.CORDON_CA},
           {"op": "read", "path": "/etc/ssl/certs/ca-certificates.crt"},
           {"op": "env", "names": env_names},
           # the default trust of the client: SSL_CERT_FILE
           tunnel(tls.host, [{"path": "/a"}], tls={"cafile": None, "alpn": ["h2", "http/1.1"]}),
           tunnel(tls.host, [{"path": "/b"}], tls={"alpn": ["h2"]}),
           tunnel(ip, [{"path": "/ip", "host": ip}], tls={"alpn": ["http/1.1"]})]
    out = tls.probe(tls.settings(), ops)
    tls.settle()
    bundle = out[0]["ok"]
    assert out[1] == {"ok": bundle}
    assert out[2] == {k: tls_lab.CORDON_CA for k in env_names}
    ca = first_pem_cert(bundle)
    cai = cert_info(ca.public_bytes(tls_lab.serialization.Encoding.DER))
    assert cai["issuer_cn"].startswith("cordon per-run CA ") and cai["subject"] == cai["issuer"]
    assert cai["ca"] is True and cai["key"] == ("EC", "secp256r1")
    # the system roots follow the CA in the bundle
    assert bundle.count("-----BEGIN CERTIFICATE-----") > 1

    a, b, c = leaf(out[3]), leaf(out[4]), leaf(out[5])
    for x in (a, b, c):
        assert x["issuer"] == cai["subject"] and signed_by(x["cert"], ca)
        assert x["key"] == ("EC", "secp256r1") and x["ca"] is False and x["days"] == 7
    assert a["sans"] == ["DNS:origin.test"] and a["subject"] == "CN=origin.test"
    assert c["sans"] == ["IP:127.0.0.1"]
    assert a["cert"].serial_number == b["cert"].serial_number  # minted once, cached
    assert (out[3]["tls"]["alpn"], out[4]["tls"]["alpn"], out[5]["tls"]["alpn"]) == \
        ("http/1.1", None, "http/1.1")
    assert [x["responses"][0]["body"] for x in out[3:]] == \
        ["hello GET /a\n", "hello GET /b\n", "hello GET /ip\n"]
    # upstream: SNI is the name the decision was made on (none for an
    # address), verified against it; the origin selected http/1.1
    assert [(h["sni"], h["alpn"]) for h in tls.handshakes()] == \
        [("origin.test", "http/1.1"), ("origin.test", "http/1.1"), (None, "http/1.1")]
    assert [(e["line"], e["host"]) for e in tls.requests()] == [
        ("GET /a HTTP/1.1", tls.host), ("GET /b HTTP/1.1", tls.host), ("GET /ip HTTP/1.1", ip)]


def test_socks_tunnel_is_intercepted_too(tls):
    """A SOCKS5 tunnel to an intercepted host gets the same treatment as a
    CONNECT: cordon's leaf, and each request is a record. (Found broken while
    writing these tests: the decrypted request was parsed as a SOCKS request,
    audit "malformed SOCKS request"; fixed in conn_update.)"""
    out = tls.probe(tls.settings(), [tunnel(tls.host, [{"path": "/socks"}], socks=True)])
    tls.settle()
    assert out[0]["socks"]["rep"] == 0
    assert leaf(out[0])["issuer_cn"].startswith("cordon per-run CA ")
    assert out[0]["responses"][0].get("body") == "hello GET /socks\n", out[0]["responses"]
    assert [e["line"] for e in tls.requests()] == ["GET /socks HTTP/1.1"]
    assert tls.connects() == [("allow", "origin.test", tls.port, "socks", None)]
    assert tls.requests_audit() == [("allow", "GET", "origin.test", tls.port, "/socks", 200,
                                     None)]


# ---------------------------------------------------------------------------
# real clients

CURL = r'''
import json, random, subprocess, sys
base, big, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open("/tmp/big", "wb") as f:
    f.write(random.Random(big).randbytes(big))
with open("/tmp/chunk", "wb") as f:
    f.write(random.Random(chunk).randbytes(chunk))
def curl(*a):
    p = subprocess.run(["curl", "-sS", "--max-time", "30"] + list(a), capture_output=True,
                       text=True)
    return [p.returncode, p.stdout, p.stderr]
print(json.dumps({
    "keepalive": curl("--http2", "-w", "|%{http_code} %{http_version} %{num_connects}\n",
                      base + "/k1", base + "/k2", base + "/k3"),
    "post": curl("--data-binary", "@/tmp/big", "-H", "Content-Type: application/octet-stream",
                 base + "/echo"),
    "chunked": curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@/tmp/chunk",
                    base + "/echo"),
    "head": curl("-I", base + "/head"),
    "verbose": curl("-v", "--http2", "-o", "/dev/null", base + "/v"),
}))
'''


def test_curl(tls):
    """curl with nothing but cordon's environment: three URLs on one
    kept-alive connection (offering h2, getting HTTP/1.1), a 3 MiB POST (with
    Expect: 100-continue), a chunked upload, HEAD; -v shows the leaf's
    issuer."""
    big, chunk = 3 * MIB + 1, 2 * MIB + 5
    base = "https://" + tls.host
    p = tls.run(tls.settings(), PY, "-c", CURL, base, str(big), str(chunk))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    tls.settle()
    for k, v in out.items():
        assert v[0] == 0, (k, v)
    assert out["keepalive"][1] == ("hello GET /k1\n|200 1.1 1\nhello GET /k2\n|200 1.1 0\n"
                                   "hello GET /k3\n|200 1.1 0\n")
    assert json.loads(out["post"][1]) == {"len": big, "sha256": sha256(det_bytes(big)),
                                          "te": None, "cl": str(big)}
    assert json.loads(out["chunked"][1]) == {"len": chunk, "sha256": sha256(det_bytes(chunk)),
                                             "te": "chunked", "cl": None}
    # -I shows the proxy's answer to CONNECT, then the origin's head
    assert out["head"][1].startswith("HTTP/1.1 200 Connection established\n\nHTTP/1.1 200 OK\n")
    assert "\nContent-Length: %d\n" % len("hello HEAD /head\n") in out["head"][1]
    v = out["verbose"][2]
    assert "issuer: O=cordon; CN=cordon per-run CA " in v, v
    assert "subject: CN=origin.test" in v and "SSL certificate verify ok." in v, v
    assert "ALPN: server accepted http/1.1" in v, v
    got = tls.requests()
    assert [e["line"] for e in got] == ["GET /k1 HTTP/1.1", "GET /k2 HTTP/1.1",
                                        "GET /k3 HTTP/1.1", "POST /echo HTTP/1.1",
                                        "POST /echo HTTP/1.1", "HEAD /head HTTP/1.1",
                                        "GET /v HTTP/1.1"]
    assert len({e["conn"] for e in got[:3]}) == 1
    assert (got[3]["framing"], got[3]["len"], got[3]["sha256"]) == \
        ("length", big, sha256(det_bytes(big)))
    assert (got[4]["framing"], got[4]["len"], got[4]["sha256"]) == \
        ("chunked", chunk, sha256(det_bytes(chunk)))
    assert [c[:4] for c in tls.connects()] == [("allow", "origin.test", tls.port, "connect")] * 5
    assert [(r[1], r[4], r[5]) for r in tls.requests_audit()] == [
        ("GET", "/k1", 200), ("GET", "/k2", 200), ("GET", "/k3", 200), ("POST", "/echo", 200),
        ("POST", "/echo", 200), ("HEAD", "/head", 200), ("GET", "/v", 200)]


PYCLIENTS = r'''
import json, random, sys, urllib.request
base, big = sys.argv[1], int(sys.argv[2])
body = random.Random(big).randbytes(big)
def gen():
    for i in range(0, len(body), 300007):
        yield body[i:i + 300007]
def u(req):
    with urllib.request.urlopen(req, timeout=30) as r:
        return [r.status, r.read().decode("latin-1"), r.headers.get("X-Origin-Conn")]
out = {"urllib": [
    u(base + "/urllib"),
    u(urllib.request.Request(base + "/echo", data=body, method="POST")),
    u(urllib.request.Request(base + "/echo", data=gen(), method="POST",
                             headers={"Transfer-Encoding": "chunked"})),
    u(urllib.request.Request(base + "/head", method="HEAD"))]}
try:
    import requests
except ImportError:
    requests = None
if requests:
    def rq(r):
        return [r.status_code, r.text, r.headers.get("X-Origin-Conn")]
    with requests.Session() as s:
        out["requests"] = [rq(s.get(base + "/r%d" % i, timeout=30)) for i in range(3)] + [
            rq(s.post(base + "/echo", data=body, timeout=30)),
            rq(s.post(base + "/echo", data=gen(), timeout=30)),
            rq(s.head(base + "/head", timeout=30))]
print(json.dumps(out))
'''


def have_requests():
    """Debian's python3-requests, installed when missing (as root)."""
    probe = [PY, "-c", "import requests"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return True
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "python3-requests"],
                       capture_output=True, timeout=300,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return subprocess.run(probe, capture_output=True).returncode == 0


def test_python_urllib_and_requests(tls):
    """urllib (HTTPS_PROXY, SSL_CERT_FILE) and requests (REQUESTS_CA_BUNDLE):
    GET, a 3 MiB POST, a chunked upload from a generator, HEAD; requests'
    Session keeps one connection for its GETs."""
    if not have_requests():
        pytest.skip("python3-requests is not installed and cannot be")
    big = 3 * MIB + 11
    base = "https://" + tls.host
    p = tls.run(tls.settings(), PY, "-c", PYCLIENTS, base, str(big))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    tls.settle()
    echo = {"len": big, "sha256": sha256(det_bytes(big)), "te": None, "cl": str(big)}
    chunked = dict(echo, te="chunked", cl=None)
    for name in ("urllib", "requests"):
        o = out[name]
        assert [x[0] for x in o[-4:]] == [200] * 4, (name, o)
        assert json.loads(o[-3][1]) == echo and json.loads(o[-2][1]) == chunked, (name, o)
        assert o[-1][1] == ""  # HEAD
    assert out["urllib"][0][1] == "hello GET /urllib\n"
    r = out["requests"]
    assert [x[1] for x in r[:3]] == ["hello GET /r0\n", "hello GET /r1\n", "hello GET /r2\n"]
    assert len({x[2] for x in r}) == 1  # one connection for the whole session
    got = tls.requests()
    assert [e["line"] for e in got] == [
        "GET /urllib HTTP/1.1", "POST /echo HTTP/1.1", "POST /echo HTTP/1.1",
        "HEAD /head HTTP/1.1", "GET /r0 HTTP/1.1", "GET /r1 HTTP/1.1", "GET /r2 HTTP/1.1",
        "POST /echo HTTP/1.1", "POST /echo HTTP/1.1", "HEAD /head HTTP/1.1"]
    assert [(e["framing"], e["len"]) for e in got if e["line"].startswith("POST")] == \
        [("length", big), ("chunked", big)] * 2
    assert {e["sha256"] for e in got if e["line"].startswith("POST")} == {sha256(det_bytes(big))}
    # urllib: a connection per request; requests: one for all six
    assert [c[0] for c in tls.connects()] == ["allow"] * 5
    assert len(tls.requests_audit()) == 10


NODE = r'''
const crypto = require('crypto');
const base = process.argv[1];
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
(async () => {
  const rec = async (r) => [r.status, await r.text(), r.headers.get('x-origin-conn')];
  const out = {get: []};
  for (const p of ['/n1', '/n2', '/n3', '/n4']) out.get.push(await rec(await fetch(base + p)));
  const big = crypto.randomBytes(3 * 1024 * 1024 + 13);
  out.post = await rec(await fetch(base + '/echo', {method: 'POST', body: big}));
  out.post_sha = sha(big);
  const parts = [crypto.randomBytes(100003), crypto.randomBytes(1), crypto.randomBytes(2 << 20)];
  const stream = new ReadableStream({start(c) { for (const p of parts) c.enqueue(p); c.close(); }});
  out.chunked = await rec(await fetch(base + '/echo', {method: 'POST', body: stream,
                                                       duplex: 'half'}));
  out.chunked_sha = sha(Buffer.concat(parts));
  out.chunked_len = Buffer.concat(parts).length;
  const h = await fetch(base + '/head', {method: 'HEAD'});
  out.head = [h.status, h.headers.get('content-length'), await h.text()];
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.log(JSON.stringify({error: String(e), cause: String(e.cause)}));
  process.exit(1);
});
'''


@pytest.fixture(scope="session")
def node22():
    node, why = tls_lab.node22()
    if not node:
        pytest.skip(why)
    return node


def test_node_fetch(tls, node22):
    """Node 22's fetch through cordon's environment alone (HTTPS_PROXY,
    NODE_USE_ENV_PROXY, NODE_EXTRA_CA_CERTS): GETs on one kept-alive
    tunnel, a 3 MiB POST, a streamed (chunked) upload, HEAD."""
    base = "https://" + tls.host
    p = tls.run(tls.settings(), node22, "-e", NODE, base)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    tls.settle()
    assert [x[:2] for x in out["get"]] == [[200, "hello GET /n%d\n" % i] for i in range(1, 5)]
    # undici keeps two tunnels alive and takes turns: connections are reused
    conns = {x[2] for x in out["get"]}
    assert len(conns) <= 2, out["get"]
    post = json.loads(out["post"][1])
    assert post == {"len": 3 * MIB + 13, "sha256": out["post_sha"], "te": None,
                    "cl": str(3 * MIB + 13)}
    ch = json.loads(out["chunked"][1])
    assert ch == {"len": out["chunked_len"], "sha256": out["chunked_sha"], "te": "chunked",
                  "cl": None}
    assert out["head"] == [200, str(len("hello HEAD /head\n")), ""]
    got = tls.requests()
    assert [e["line"] for e in got] == ["GET /n%d HTTP/1.1" % i for i in range(1, 5)] + [
        "POST /echo HTTP/1.1", "POST /echo HTTP/1.1", "HEAD /head HTTP/1.1"]
    assert {e["host"] for e in got} == {tls.host}
    assert [(e["framing"], e["sha256"]) for e in got[4:6]] == [
        ("length", out["post_sha"]), ("chunked", out["chunked_sha"])]
    # a record per tunnel (as many as the origin saw connections), per request
    assert [c[:4] for c in tls.connects()] == \
        [("allow", "origin.test", tls.port, "connect")] * len({e["conn"] for e in got})
    assert [(r[1], r[4], r[5]) for r in tls.requests_audit()] == [
        ("GET", "/n1", 200), ("GET", "/n2", 200), ("GET", "/n3", 200), ("GET", "/n4", 200),
        ("POST", "/echo", 200), ("POST", "/echo", 200), ("HEAD", "/head", 200)]


# ---------------------------------------------------------------------------
# excluded hosts keep their own certificate

def test_excluded_host_keeps_its_own_certificate(tls):
    """excludeDomains: the tunnel is opaque. The client sees the origin's own
    certificate (issued by the test CA, not cordon's), so trusting only
    cordon's bundle fails and trusting the test CA works; the origin sees
    the client's own SNI and ALPN (it picks h2 here); no request is
    recorded."""
    s = tls.settings(tls={"excludeDomains": ["excluded.test"]})
    ex = "excluded.test:%d" % tls.port
    ops = [tunnel(ex, [{"path": "/x"}]),
           tunnel(ex, [{"path": "/x", "host": ex}], tls={"cafile": "test-ca.pem",
                                                       "alpn": ["http/1.1"]}),
           tunnel(ex, tls={"cafile": "test-ca.pem", "alpn": ["h2", "http/1.1"]}),
           tunnel(tls.host, [{"path": "/o"}])]
    out = tls.probe(s, ops)
    tls.settle()
    assert out[0]["tls"]["ok"] is False and out[0]["tls"]["reason"] == \
        "CERTIFICATE_VERIFY_FAILED", out[0]
    assert out[0]["tls"]["verify"] == "unable to get local issuer certificate"
    own = leaf(out[1])
    assert own["issuer_cn"] == "cordon tls test CA" and signed_by(own["cert"], tls.pki.ca_cert)
    assert "DNS:excluded.test" in own["sans"]
    assert out[1]["responses"][0]["body"] == "hello GET /x\n"
    assert out[2]["tls"]["alpn"] == "h2"
    assert leaf(out[3])["issuer_cn"].startswith("cordon per-run CA ")
    # the client that trusts only cordon's bundle gave up: unknown CA
    assert ["unknown ca" in e["error"] for e in tls.events("tls-error")] == [True]
    assert [(h["sni"], h["alpn"]) for h in tls.handshakes()] == [
        ("excluded.test", "http/1.1"), ("excluded.test", "h2"), ("origin.test", "http/1.1")]
    assert [(e["line"], e["host"]) for e in tls.requests()] == [
        ("GET /x HTTP/1.1", ex), ("GET /o HTTP/1.1", tls.host)]
    assert [c[:3] for c in tls.connects()] == [("allow", "excluded.test", tls.port)] * 3 + \
        [("allow", "origin.test", tls.port)]
    assert tls.requests_audit() == [("allow", "GET", "origin.test", tls.port, "/o", 200, None)]


# ---------------------------------------------------------------------------
# knobs

def test_refuse_opaque_tunnels(tls):
    """refuseOpaqueTunnels: a CONNECT to an excluded host is refused (403,
    the reason as status phrase, X-Proxy-Error opaque-tunnel), every SOCKS
    tunnel is refused (reply 2, "not allowed by ruleset"), intercepted
    CONNECTs still work; the refused ones never reach the origin."""
    s = tls.settings(tls={"excludeDomains": ["excluded.test"]}, refuseOpaqueTunnels=True)
    ex = "excluded.test:%d" % tls.port
    ops = [{"op": "tunnel", "connect": ex},
           {"op": "tunnel", "connect": ex, "socks": True},
           {"op": "tunnel", "connect": tls.host, "socks": True},
           tunnel(tls.host, [{"path": "/still"}])]
    out = tls.probe(s, ops)
    tls.settle()
    why = "tunnels that are not intercepted are refused (refuseOpaqueTunnels)"
    c = out[0]["connect"]
    assert (c["status"], c["reason"], header(c, "X-Proxy-Error")) == (403, why, "opaque-tunnel")
    assert c["body"] == "cordon: %s: %s\n" % (ex, why)
    assert out[1]["socks"]["rep"] == 2 and out[2]["socks"]["rep"] == 2
    assert out[3]["responses"][0]["body"] == "hello GET /still\n"
    socks_why = "SOCKS tunnels are refused (refuseOpaqueTunnels)"
    p = tls.port
    assert tls.connects() == [("deny", "excluded.test", p, "connect", why),
                              ("deny", "excluded.test", p, "socks", socks_why),
                              ("deny", "origin.test", p, "socks", socks_why),
                              ("allow", "origin.test", p, "connect", None)]
    assert [e["ev"] for e in tls.events()] == ["accept", "handshake", "request"]


def test_max_tunnels(tls):
    """maxTunnels 1: while one intercepted tunnel is open, a second one (by
    CONNECT: 503 with X-Proxy-Error too-many-tunnels; by SOCKS: general
    failure) is refused before any upstream connection; an excluded (opaque)
    tunnel is not counted; once the first closes, a new one is accepted."""
    s = tls.settings(tls={"maxTunnels": 1, "excludeDomains": ["excluded.test"]})
    ex = "excluded.test:%d" % tls.port
    steps = [tunnel(tls.host, [{"path": "/held"}]),
             {"op": "tunnel", "connect": tls.host},
             {"op": "tunnel", "connect": "127.0.0.1:%d" % tls.port},
             {"op": "tunnel", "connect": tls.host, "socks": True},
             tunnel(ex, [{"path": "/opaque", "host": ex}], tls={"cafile": "test-ca.pem"},
                    close=True),
             dict(tunnel(tls.host, [{"path": "/after"}]), close_kept=True, retry_503=200)]
    out = tls.probe(s, [{"op": "multi", "steps": steps}])[0]
    tls.settle()
    why = "too many intercepted tunnels (tlsTerminate.maxTunnels)"
    assert out[0]["responses"][0]["body"] == "hello GET /held\n"
    for r, host in ((out[1], tls.host), (out[2], "127.0.0.1:%d" % tls.port)):
        c = r["connect"]
        assert (c["status"], c["reason"], header(c, "X-Proxy-Error")) == \
            (503, "Service Unavailable", "too-many-tunnels"), r
        assert c["body"] == "cordon: %s: %s\n" % (host, why)
    assert out[3]["socks"]["rep"] == 1
    assert out[4]["responses"][0]["body"] == "hello GET /opaque\n"
    assert out[5]["responses"][0]["body"] == "hello GET /after\n"
    retries = out[5]["attempts"] - 1
    p = tls.port
    assert tls.connects() == [
        ("allow", "origin.test", p, "connect", None),
        ("deny", "origin.test", p, "connect", why),
        ("deny", "127.0.0.1", p, "connect", why),
        ("deny", "origin.test", p, "socks", why),
        ("allow", "excluded.test", p, "connect", None)] + \
        [("deny", "origin.test", p, "connect", why)] * retries + \
        [("allow", "origin.test", p, "connect", None)]
    # refused tunnels were never dialled
    assert len(tls.events("accept")) == 3
    assert [e["line"] for e in tls.requests()] == ["GET /held HTTP/1.1", "GET /opaque HTTP/1.1",
                                                   "GET /after HTTP/1.1"]


def test_handshake_timeout_closes_a_silent_client(tls):
    """handshakeTimeoutMs 200: a client that sends nothing after CONNECT,
    or half a ClientHello, is disconnected (well within the probe's 15 s
    bound); with the default (10 s) the same silent client is still
    connected a second later. Nothing reaches the origin beyond the TCP
    connection cordon opened before the handshake."""
    hello = tls_lab.client_hello("origin.test")
    short = {"op": "tunnel", "connect": tls.host}
    half = {"op": "tunnel", "connect": tls.host, "send": hello[:40].hex()}
    out = tls.probe(tls.settings(tls={"handshakeTimeoutMs": 200}), [short, half])
    assert [(o["end"], o["received"]) for o in out] == [("eof", ""), ("eof", "")], out
    default = tls.probe(tls.settings(), [dict(short, wait=1.0)])
    assert default[0]["end"] == "open", default
    tls.settle()
    assert tls.reached() == []


def test_strip_response_headers(tls):
    """stripResponseHeaders removes the listed response fields, matching
    names case-insensitively with "-", "_" and "." folded together, and
    keeps every other field (also near misses); an opaque tunnel to an
    excluded host is not touched."""
    s = tls.settings(tls={"excludeDomains": ["excluded.test"]},
                     stripResponseHeaders=["x-secret_token", "Server.Timing"])
    ex = "excluded.test:%d" % tls.port
    out = tls.probe(s, [tunnel(tls.host, [{"path": "/strip"}]),
                        tunnel(ex, [{"path": "/strip", "host": ex}],
                               tls={"cafile": "test-ca.pem"})])
    kept = [k for k, _ in out[0]["responses"][0]["headers"]]
    assert kept == ["Content-Length", "X-Origin-Conn", "X-Secret-Tokens", "XSecretToken",
                    "X-Keep"]
    assert [v for k, v in out[0]["responses"][0]["headers"][2:]] == ["f", "g", "h"]
    assert [k for k, _ in out[1]["responses"][0]["headers"]] == \
        ["Content-Length", "X-Origin-Conn"] + [k for k, _ in tls_lab.STRIP_FIELDS]


def test_untrusted_upstream_is_a_502(tls):
    """Upstream certificates are verified: without upstreamCaFile the test
    CA is not trusted, and the client, after its own handshake with cordon,
    gets 502 with X-Proxy-Error upstream-tls and a body naming the
    verification error; a name the origin's certificate does not cover is
    refused the same way (hostname mismatch). The audit's net.request has
    status 502 and the same reason; the origin got handshakes that cordon
    aborted (alerts unknown CA, bad certificate) and no request."""
    s = tls.settings(upstream_ca=False)
    out = tls.probe(s, [tunnel(tls.host, [{"path": "/x"}])])
    r = out[0]["responses"][0]
    why = "TLS handshake with the upstream failed: unable to get local issuer certificate"
    assert (r["status"], r["reason"], header(r, "X-Proxy-Error")) == \
        (502, "Bad Gateway", "upstream-tls"), r
    assert r["body"] == "cordon: %s: %s\n" % (tls.host, why)
    assert tls.requests_audit() == [("allow", "-", "origin.test", tls.port, "", 502, why)]

    other = "other.test:%d" % tls.port
    s2 = tls.settings(allow=["other.test:%d" % tls.port, "127.0.0.1:%d" % tls.port],
                      hosts={"other.test": "127.0.0.1"})
    out = tls.probe(s2, [tunnel(other, [{"path": "/y"}])])
    r = out[0]["responses"][0]
    why2 = "TLS handshake with the upstream failed: hostname mismatch"
    assert (r["status"], header(r, "X-Proxy-Error"), r["body"]) == \
        (502, "upstream-tls", "cordon: %s: %s\n" % (other, why2)), r
    assert tls.requests_audit() == [("allow", "-", "other.test", tls.port, "", 502, why2)]
    tls.settle()
    assert tls.requests() == [] and tls.handshakes() == []
    errs = [e["error"] for e in tls.events("tls-error")]
    assert len(errs) == 2 and "alert unknown ca" in errs[0] and \
        "alert bad certificate" in errs[1], errs
