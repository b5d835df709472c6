"""Credentials never enter the sandbox (issue 9): where the real values go.

The sandbox holds sentinels; cordon's proxy puts the real value back only
toward the secret's own injectHosts (the CONNECT target and the Host of the
request both in scope), in the request target, header values and identity
bodies (streamed, re-framed chunked when the lengths differ); strips client
credential headers that do not carry that host's sentinel (T21); adds
network.injectHeaders; and replaces every real value an answer echoes by its
sentinel again. Plain HTTP gets substitution only with allowPlaintextInject
and injected headers only with allowPlaintextHeaderSet; an opaque tunnel to
a credential host is refused.

The origin is creds_lab's HTTP and HTTPS server on the host's 127.0.0.1
(api.test, other.test, allowed.test, www.allowed.test, excluded.test through
network.hosts), which logs every request as received: the line, every
header, the body and where each real value occurs in it. The client
(creds_client.py) runs inside cordon and knows only the sandbox's
variables and files. Every test runs as root and as uid 65534, asserts what
reached the origin, what the client got back and the audit records, and
ends by looking for every real value in every byte cordon printed or wrote.
"""
import json
import os
import re

import pytest

import creds_lab
from creds_lab import MIB, PY, SENTINEL_RE, Creds, build_body, header, offsets, sha256

INTERCEPT_WHY = ("credentials are injected toward this host, so its traffic must be intercepted "
                 "(set network.tlsTerminate; the host must not be in excludeDomains)")
PLAINTEXT_HDR_WHY = ("headers are injected toward this host only over TLS "
                     "(network.allowPlaintextHeaderSet)")


@pytest.fixture(scope="module")
def lab():
    lb = creds_lab.Lab()
    yield lb
    lb.stop()


@pytest.fixture
def cp(sb, lab):
    c = Creds(sb, lab)
    yield c
    with lab.origin.lock:
        lab.origin.watch = []


def http(authority, reqs, **kw):
    return dict(op="http", connect=authority, reqs=list(reqs), **kw)


def plain(reqs, **kw):
    return dict(op="http", via="plain", reqs=list(reqs), **kw)


def env_op(*names):
    return {"op": "env", "names": list(names)}


def is_sentinel(v, n):
    return isinstance(v, str) and re.match(SENTINEL_RE, v) is not None and len(v) == n


def mask(name, hosts=None, **kw):
    e = {"name": name, "mode": "mask"}
    if hosts is not None:
        e["injectHosts"] = hosts
    e.update(kw)
    return e


def requests_audit(cp):
    """(verdict, method, host, path, status, injected, stripped) per net.request."""
    return [(r["verdict"], r["method"], r["host"], r["path"], r["status"], r.get("injected"),
             r.get("stripped")) for r in cp.audit("net.request")]


def connects(cp):
    return [(r["verdict"], r["host"], r["port"], r["via"], r.get("reason"))
            for r in cp.audit("net.connect")]


# ---------------------------------------------------------------------------
# 2. real values toward the inject host only

def test_real_values_reach_only_the_inject_host(cp):
    """One request, sent to api.test (the secrets' injectHosts) and to
    other.test (allowed, not an inject host). api.test receives the real
    values in the request target, in Authorization (it carries api.test's
    own sentinel, so it is kept), in other headers and in the body; the
    body is re-framed chunked because one sentinel is longer than its
    value; Accept-Encoding is forced to identity. other.test receives
    exactly what the sandbox sent: sentinels, the client's Authorization and
    Accept-Encoding, Content-Length. The origin's answer echoes the target:
    the client sees it with sentinels. The audit names each credential
    injected toward api.test, by setting, never by value."""
    T = cp.T
    api, short, ftok = cp.real(n=40), cp.real("pw-", 10), cp.real("file-", 30)
    f = cp.secret_file("token.txt", ftok + "\n")
    creds = {"envVars": [mask("API_KEY", ["api.test"]), mask("SHORT_PW", ["api.test"])],
             "files": [{"path": f, "mode": "mask", "injectHosts": ["api.test"]}]}
    req = {"method": "POST", "target": "/v1/x?key=${API_KEY}&s=${SHORT_PW}",
           "headers": [["Authorization", "Bearer ${API_KEY}"], ["X-Short", "${SHORT_PW}"],
                       ["X-File", "${FILETOK}"], ["Accept-Encoding", "gzip, br"]],
           "body": "a=${API_KEY}&b=${SHORT_PW}&c=${FILETOK}&end"}
    gz = {"method": "POST", "target": "/gz", "body": "k=${API_KEY}",
          "headers": [["Content-Encoding", "gzip"]]}
    ops = [env_op("API_KEY", "SHORT_PW"), {"op": "read", "path": f},
           http("api.test:%d" % T, [req, gz], files={"FILETOK": f}),
           http("other.test:%d" % T, [req], files={"FILETOK": f})]
    out = cp.client(cp.settings(creds), ops, env={"API_KEY": api, "SHORT_PW": short})
    cp.settle()
    fa, fs = out[0]["API_KEY"], out[0]["SHORT_PW"]
    ff = out[1]["ok"][:-1]
    assert is_sentinel(fa, 40) and is_sentinel(fs, 24) and is_sentinel(ff, 30), out[:2]
    assert out[1]["ok"] == ff + "\n"

    got = cp.requests()
    assert [(e["sni"], e["line"]) for e in got] == [
        ("api.test", "POST /v1/x?key=%s&s=%s HTTP/1.1" % (api, short)),
        ("api.test", "POST /gz HTTP/1.1"),
        ("other.test", "POST /v1/x?key=%s&s=%s HTTP/1.1" % (fa, fs))]
    a, g, o = got
    # an encoded body is not scanned: the sentinel goes out as it is (it
    # fails safe), framed as it came
    assert (g["framing"], g["body"], header(g, "Content-Length")) == \
        ("length", ("k=" + fa).encode(), [str(len("k=" + fa))])
    assert a["headers"] == [["Host", "api.test:%d" % T], ["Authorization", "Bearer " + api],
                            ["X-Short", short], ["X-File", ftok],
                            ["Transfer-Encoding", "chunked"], ["Accept-Encoding", "identity"],
                            ["Connection", "keep-alive"]]
    assert (a["framing"], a["body"]) == \
        ("chunked", ("a=%s&b=%s&c=%s&end" % (api, short, ftok)).encode())
    body_o = "a=%s&b=%s&c=%s&end" % (fa, fs, ff)
    assert o["headers"] == [["Host", "other.test:%d" % T], ["Authorization", "Bearer " + fa],
                            ["X-Short", fs], ["X-File", ff], ["Accept-Encoding", "gzip, br"],
                            ["Content-Length", str(len(body_o))], ["Connection", "keep-alive"]]
    assert (o["framing"], o["body"]) == ("length", body_o.encode())

    # the echo of the target comes back with the sentinels
    r = [x["responses"][0] for x in out[2:]]
    assert [(x["status"], x["body"]) for x in r] == [
        (200, "hello POST /v1/x?key=%s&s=%s\n" % (fa, fs))] * 2
    assert out[2]["responses"][1]["status"] == 200
    # the answer from api.test was re-framed (the sentinel is longer)
    assert header(r[0], "Transfer-Encoding") == ["chunked"] and header(r[0], "Content-Length") == []

    labels = ["credentials.envVars[0] (API_KEY)", "credentials.envVars[1] (SHORT_PW)",
              "credentials.files[0] (%s)" % f]
    recs = requests_audit(cp)
    assert [r[:5] + (r[6],) for r in recs] == [
        ("allow", "POST", "api.test", "/v1/x?key=%s&s=%s" % (fa, fs), 200, None),
        ("allow", "POST", "api.test", "/gz", 200, None),
        ("allow", "POST", "other.test", "/v1/x?key=%s&s=%s" % (fa, fs), 200, None)]
    assert sorted(recs[0][5]) == sorted(labels) and recs[1][5] is None and recs[2][5] is None
    cp.check_no_leak()


def test_a_body_only_substitution_is_recorded_in_the_audit(cp):
    """A sentinel that only the body carries is substituted like any other,
    and the net.request record says so ("injected" names the credential)."""
    api = cp.real(n=40)
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    out = cp.client(s, [http("api.test:%d" % cp.T, [{"method": "POST", "target": "/summary",
                                                      "body": "k=${API_KEY}"}])],
                    env={"API_KEY": api})
    cp.settle()
    assert [e["body"] for e in cp.requests()] == [("k=" + api).encode()]
    assert out[0]["responses"][0]["status"] == 200
    recs = requests_audit(cp)
    assert [r[:5] for r in recs] == [("allow", "POST", "api.test", "/summary", 200)]
    assert recs[0][5] == ["credentials.envVars[0] (API_KEY)"], recs
    cp.check_no_leak()


def test_100_mib_body_with_sentinels_across_read_boundaries(cp):
    """A 100 MiB body made inside the sandbox (FILL: near misses of the
    sentinel prefix every 16 bytes) with the sentinel written where it
    spans TLS record (16 KiB) and proxy read (64 KiB) boundaries, at the
    very start and at the very end: the origin receives exactly N bytes
    (Content-Length kept, the lengths being equal) with the real value at
    exactly those offsets and nowhere else (sha256 of the expected body).
    Then an 8 MiB chunked upload whose 10-byte secret has a 24-byte
    sentinel: re-framed, 14 bytes shorter per occurrence, exact."""
    api, short = cp.real(n=40), cp.real("pw-", 10)
    T = cp.T
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    n = 100 * MIB
    at = sorted([0, 16384 - 3, 2 * 16384 - 20, 3 * 16384 - 39, 65536 - 5, 2 * 65536 - 5,
                 7 * 65536 - 5, 100 * 65536 - 5, MIB - 1, 50 * MIB + 1, n - 40])
    gen = {"size": n, "at": [[o, "${API_KEY}"] for o in at]}
    out = cp.client(s, [env_op("API_KEY"), http("api.test:%d" % T, [
        {"method": "POST", "target": "/summary", "gen": gen}])], env={"API_KEY": api},
        timeout=120)
    cp.settle()
    fa = out[0]["API_KEY"]
    expect = build_body(n, [(o, "v") for o in at], {"v": api})
    got = cp.requests()
    assert len(got) == 1 and got[0]["line"] == "POST /summary HTTP/1.1"
    e = got[0]
    assert header(e, "Content-Length") == [str(n)] and header(e, "Transfer-Encoding") == []
    assert (e["framing"], e["len"], e["found"][api], e["sha256"]) == \
        ("length", n, at, sha256(expect))
    r = out[1]["responses"][0]
    assert r["status"] == 200 and json.loads(r["body"]) == {"len": n, "sha256": sha256(expect)}
    assert fa.encode() not in expect
    del expect

    # chunked, a shorter real value
    cp.reset()
    s = cp.settings({"envVars": [mask("SHORT_PW", ["api.test"])]})
    n2, sizes = 8 * MIB, [1, 7, 16384, 65531, 100003]
    bounds, off, k = [], 0, 0
    while off < n2:
        off += sizes[k % len(sizes)]
        k += 1
        bounds.append(off)
    at2, last = [0], 0
    for b in bounds[2:60]:  # 5 bytes before a chunk boundary, sentinels apart
        if b - 5 >= last + 24:
            at2.append(b - 5)
            last = b - 5
    at2.append(n2 - 24)
    gen = {"size": n2, "at": [[o, "${SHORT_PW}"] for o in at2]}
    out = cp.client(s, [env_op("SHORT_PW"), http("api.test:%d" % T, [
        {"method": "POST", "target": "/summary", "gen": gen, "chunked": sizes}])],
        env={"SHORT_PW": short}, timeout=120)
    cp.settle()
    fs = out[0]["SHORT_PW"]
    assert is_sentinel(fs, 24)
    sent = build_body(n2, [(o, "v") for o in at2], {"v": fs})
    assert sent.count(fs.encode()) == len(at2)
    expect = sent.replace(fs.encode(), short.encode())
    e = cp.requests()[0]
    assert (e["framing"], e["len"], e["sha256"]) == ("chunked", n2 - 14 * len(at2), sha256(expect))
    assert e["found"][short] == offsets(expect, short.encode()) and len(e["found"][short]) == len(at2)
    assert out[1]["responses"][0]["status"] == 200
    cp.check_no_leak()


# ---------------------------------------------------------------------------
# 3. T21: the Cowork case

ATTACKER = [["x-api-key", "sk-ant-attacker-1"], ["Authorization", "Bearer sk-ant-attacker-2"],
            ["x_api_key", "sk-ant-attacker-3"], ["X.Api.Key", "sk-ant-attacker-4"],
            ["Cookie", "session=attacker-5"], ["Proxy-Authorization", "Basic YXR0YWNrZXI6Ng=="],
            ["Anthropic-Beta", "files-api-2025-04-14"], ["X-Api-Key", "${OTHER_TOKEN}"],
            ["Content-Type", "application/json"]]
STRIPPED = ["x-api-key", "Authorization", "x_api_key", "X.Api.Key", "Cookie", "Anthropic-Beta"]


def test_t21_attacker_key_never_reaches_the_inject_host(cp):
    """POST /v1/files to api.test with the attacker's key in every spelling
    (x-api-key, x_api_key, X.Api.Key, Authorization, Cookie,
    Proxy-Authorization) and another host's sentinel in X-Api-Key, plus a
    beta header in stripRequestHeaders: the origin receives only the user's
    key, injected by network.injectHeaders (its variable is gone from the
    sandbox). Toward other.test (its own masked token), the header carrying
    other.test's sentinel is kept and substituted, the attacker's are
    stripped, and the user's Anthropic key is not sent. Toward allowed.test,
    which no credential names, only stripRequestHeaders applies. The audit
    lists what was stripped and injected."""
    T = cp.T
    user_key, other = cp.real("sk-ant-user-", 48), cp.real("ghp_", 40)
    creds = {"envVars": [mask("OTHER_TOKEN", ["other.test"])]}
    inject = [{"host": "api.test", "header": "x-api-key", "value": "${env:ANTHROPIC_API_KEY}"}]
    s = cp.settings(creds, injectHeaders=inject, stripRequestHeaders=["anthropic-beta"])
    req = {"method": "POST", "target": "/v1/files", "headers": ATTACKER,
           "body": '{"file": "exfil"}'}
    env = {"ANTHROPIC_API_KEY": user_key, "OTHER_TOKEN": other}
    out = cp.client(s, [env_op("ANTHROPIC_API_KEY", "OTHER_TOKEN"),
                        http("api.test:%d" % T, [req]), http("other.test:%d" % T, [req]),
                        http("allowed.test:%d" % T, [req])], env=env)
    cp.settle()
    fo = out[0]["OTHER_TOKEN"]
    assert out[0]["ANTHROPIC_API_KEY"] is None and is_sentinel(fo, 40)
    assert [x["responses"][0]["status"] for x in out[1:]] == [200, 200, 200]
    a, o, n = cp.requests()
    common = [["Content-Type", "application/json"], ["Content-Length", "17"],
              ["Accept-Encoding", "identity"]]
    assert a["headers"] == [["Host", "api.test:%d" % T]] + common + \
        [["x-api-key", user_key], ["Connection", "keep-alive"]]
    assert o["headers"] == [["Host", "other.test:%d" % T], ["X-Api-Key", other]] + common + \
        [["Connection", "keep-alive"]]
    for e in (a, o):
        assert "attacker" not in json.dumps(e["headers"]) and e["body"] == b'{"file": "exfil"}'
    assert n["headers"] == [["Host", "allowed.test:%d" % T]] + \
        [h for h in ATTACKER if h[0] not in ("Proxy-Authorization", "Anthropic-Beta",
                                             "X-Api-Key")] [:5] + \
        [["X-Api-Key", fo], ["Content-Type", "application/json"], ["Content-Length", "17"],
         ["Connection", "keep-alive"]]
    assert requests_audit(cp)[2] == ("allow", "POST", "allowed.test", "/v1/files", 200, None,
                                     ["Anthropic-Beta"])
    assert requests_audit(cp)[:2] == [
        ("allow", "POST", "api.test", "/v1/files", 200, ["network.injectHeaders[0]"],
         STRIPPED + ["X-Api-Key"]),
        ("allow", "POST", "other.test", "/v1/files", 200, ["credentials.envVars[0] (OTHER_TOKEN)"],
         STRIPPED)]
    cp.check_no_leak()


def test_t21_masked_key_passes_only_as_the_users_key(cp):
    """The user's key as a masked variable that the SDK inside sends as
    x-api-key: the origin gets the real key; a program that sends its own
    key instead (in x-api-key and Authorization) reaches the origin without
    any key."""
    T = cp.T
    user_key = cp.real("sk-ant-user-", 48)
    s = cp.settings({"envVars": [mask("ANTHROPIC_API_KEY", ["api.test"])]})
    reqs = [{"method": "POST", "target": "/v1/messages",
             "headers": [["x-api-key", "${ANTHROPIC_API_KEY}"]], "body": "{}"},
            {"method": "POST", "target": "/v1/files",
             "headers": [["x-api-key", "sk-ant-attacker-1"],
                         ["Authorization", "Bearer sk-ant-attacker-2"]], "body": "{}"}]
    out = cp.client(s, [http("api.test:%d" % T, reqs)], env={"ANTHROPIC_API_KEY": user_key})
    cp.settle()
    assert [r["status"] for r in out[0]["responses"]] == [200, 200]
    m, f = cp.requests()
    assert header(m, "x-api-key") == [user_key] and header(m, "Authorization") == []
    assert header(f, "x-api-key") == [] and header(f, "Authorization") == []
    assert "attacker" not in json.dumps(f["headers"])
    assert requests_audit(cp) == [
        ("allow", "POST", "api.test", "/v1/messages", 200,
         ["credentials.envVars[0] (ANTHROPIC_API_KEY)"], None),
        ("allow", "POST", "api.test", "/v1/files", 200, None, ["x-api-key", "Authorization"])]
    cp.check_no_leak()


def test_t21_sentinel_beside_an_attackers_value_is_not_enough(cp):
    """A credential header passes toward its host only when it carries
    nothing the sandbox chose beside the sentinel: the attacker's session
    cookie next to a cookie holding the sentinel, or the attacker's key in
    front of the sentinel in Authorization or X-Api-Key, never reach the
    origin (the cookie pair is dropped, the other headers stripped). The
    normal forms (the sentinel alone, "Bearer <sentinel>", cookies whose
    values are sentinels) still carry the real value."""
    T = cp.T
    key = cp.real("sk-ant-user-", 48)
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    K = "${API_KEY}"
    reqs = [{"method": "GET", "target": "/attack",
             "headers": [["Cookie", "session=ATTACKER-1; k=" + K],
                         ["Authorization", "Bearer ATTACKER-2 " + K],
                         ["Authorization", "Bearer " + K + " ATTACKER-3"],
                         ["X-Api-Key", "ATTACKER-4" + K]]},
            {"method": "GET", "target": "/normal",
             "headers": [["Cookie", "a=" + K + ";b=" + K],
                         ["Authorization", "Bearer  " + K],
                         ["X-Api-Key", K]]}]
    out = cp.client(s, [http("api.test:%d" % T, reqs)], env={"API_KEY": key})
    cp.settle()
    assert [r["status"] for r in out[0]["responses"]] == [200, 200]
    a, n = cp.requests()
    assert "ATTACKER" not in json.dumps(a["headers"])
    assert header(a, "Cookie") == ["k=" + key]
    assert header(a, "Authorization") == [] and header(a, "X-Api-Key") == []
    assert header(n, "Cookie") == ["a=%s;b=%s" % (key, key)]
    assert header(n, "Authorization") == ["Bearer  " + key]
    assert header(n, "X-Api-Key") == [key]
    recs = requests_audit(cp)
    assert recs[0][6] == ["Cookie", "Authorization", "X-Api-Key"]
    assert recs[1][6] is None
    cp.check_no_leak()


def test_t21_request_rules_refuse_v1_files_before_the_origin(cp):
    """With requestRules allowing only POST /v1/messages on api.test, the
    upload to /v1/files is refused with 403 (blocked-by-rule) and never
    reaches the origin; /v1/messages goes through with the user's key."""
    T = cp.T
    user_key = cp.real("sk-ant-user-", 48)
    inject = [{"host": "api.test", "header": "x-api-key", "value": "${env:ANTHROPIC_API_KEY}"}]
    s = cp.settings(None, injectHeaders=inject,
                    requestRules=[{"host": "api.test", "allow": ["POST /v1/messages"]}])
    reqs = [{"method": "POST", "target": "/v1/files", "headers": ATTACKER[:2], "body": "{}"},
            {"method": "POST", "target": "/v1/messages", "headers": ATTACKER[:2], "body": "{}"}]
    out = cp.client(s, [http("api.test:%d" % T, [q]) for q in reqs],
                    env={"ANTHROPIC_API_KEY": user_key})
    cp.settle()
    r = [o["responses"][0] for o in out]
    assert [x["status"] for x in r] == [403, 200], r
    assert header(r[0], "X-Proxy-Error") == ["blocked-by-rule"]
    got = cp.requests()
    assert [e["line"] for e in got] == ["POST /v1/messages HTTP/1.1"]
    assert header(got[0], "x-api-key") == [user_key] and header(got[0], "Authorization") == []
    recs = requests_audit(cp)
    assert [x[:5] for x in recs] == [("deny", "POST", "api.test", "/v1/files", 403),
                                     ("allow", "POST", "api.test", "/v1/messages", 200)]
    assert recs[1][5:] == (["network.injectHeaders[0]"], ["x-api-key", "Authorization"])
    cp.check_no_leak()


# ---------------------------------------------------------------------------
# 4. T22: the effective host

def test_t22_inner_host_outside_the_scope_gets_no_substitution(cp):
    """requireHostMatch false: a tunnel to allowed.test (the only inject
    host) whose request names www.allowed.test gets no substitution: the
    sentinel goes out in the target, headers and body, and the client's
    Authorization is stripped (allowed.test is a credential host). The
    same request naming allowed.test gets the real values; a tunnel to
    www.allowed.test naming allowed.test gets none and is left alone."""
    T = cp.T
    api = cp.real(n=40)
    s = cp.settings({"envVars": [mask("API_KEY", ["allowed.test"])]}, requireHostMatch=False)
    A, W = "allowed.test:%d" % T, "www.allowed.test:%d" % T

    def req(host):
        return {"method": "POST", "target": "/t22?k=${API_KEY}", "host": host,
                "headers": [["Authorization", "Bearer ${API_KEY}"], ["X-Key", "${API_KEY}"]],
                "body": "k=${API_KEY}"}

    out = cp.client(s, [env_op("API_KEY"), http(A, [req(W)]), http(A, [req(A)]),
                        http(W, [req(A)])], env={"API_KEY": api})
    cp.settle()
    fa = out[0]["API_KEY"]
    assert [x["responses"][0]["status"] for x in out[1:]] == [200] * 3
    w, a, x = cp.requests()
    assert (w["sni"], w["line"], w["body"]) == ("allowed.test", "POST /t22?k=%s HTTP/1.1" % fa,
                                                ("k=" + fa).encode())
    assert w["headers"] == [["Host", A], ["X-Key", fa], ["Content-Length", "42"],
                            ["Connection", "keep-alive"]]
    assert (a["line"], header(a, "Authorization"), header(a, "X-Key"), a["body"]) == \
        ("POST /t22?k=%s HTTP/1.1" % api, ["Bearer " + api], [api], ("k=" + api).encode())
    assert (x["sni"], x["line"], header(x, "Authorization"), x["body"]) == \
        ("www.allowed.test", "POST /t22?k=%s HTTP/1.1" % fa, ["Bearer " + fa], ("k=" + fa).encode())
    assert all(e["found"][api] == [] for e in (w, x))
    recs = requests_audit(cp)
    assert [r[2:] for r in recs] == [
        ("allowed.test", "/t22?k=" + fa, 200, None, ["Authorization"]),
        ("allowed.test", "/t22?k=" + fa, 200, ["credentials.envVars[0] (API_KEY)"], None),
        ("www.allowed.test", "/t22?k=" + fa, 200, None, None)]
    cp.check_no_leak()


# ---------------------------------------------------------------------------
# 5. echoes come back as sentinels

def test_echoed_real_values_come_back_as_sentinels(cp):
    """The origin echoes the request as it received it (real values in the
    target, Authorization, X-Reason, the injected header, the body) in its
    body, in response headers and in the reason phrase; with
    Content-Length, chunked in 5-byte chunks, and trickled 3 bytes a TLS
    record. The client gets the same text with every real value replaced:
    its own sentinels, and for the injected header's pieces sentinels it
    never held; it counts its sentinels and finds no real value (checked
    inside the sandbox too)."""
    T = cp.T
    api, short = cp.real(n=40), cp.real("pw-", 10)
    hdr, fsec = cp.real("hdr-", 32), cp.real("fh-", 28)
    f = cp.secret_file("hdr.txt", fsec + "\n")
    creds = {"envVars": [mask("API_KEY", ["api.test"]), mask("SHORT_PW", ["api.test"])]}
    inject = [{"host": "api.test", "header": "X-Injected",
               "value": "Token ${env:HDR_SECRET} ${file:%s} $$5" % f}]
    s = cp.settings(creds, injectHeaders=inject)

    def req(q):
        return {"method": "POST", "target": "/reflect?%s&key=${API_KEY}" % q,
                "headers": [["Authorization", "Bearer ${API_KEY}"], ["X-Reason", "${SHORT_PW}"]],
                "body": "b=${API_KEY}&c=${SHORT_PW}"}

    env = {"API_KEY": api, "SHORT_PW": short, "HDR_SECRET": hdr, "REV_API": api[::-1],
           "REV_SHORT": short[::-1], "REV_HDR": hdr[::-1], "REV_FILE": fsec[::-1]}
    op = http("api.test:%d" % T, [req("as=is"), req("chunked=5"), req("trickle=3"),
                                  req("eof=1")],
              watch=["API_KEY", "SHORT_PW"],
              absent_rev=["REV_API", "REV_SHORT", "REV_HDR", "REV_FILE"])
    out = cp.client(s, [env_op("API_KEY", "SHORT_PW", "HDR_SECRET"), op], env=env)
    cp.settle()
    fa, fs = out[0]["API_KEY"], out[0]["SHORT_PW"]
    assert out[0]["HDR_SECRET"] is None
    got = cp.requests()
    assert len(got) == 4
    for e in got:
        assert header(e, "X-Injected") == ["Token %s %s $5" % (hdr, fsec)]
        assert header(e, "Authorization") == ["Bearer " + api] and header(e, "X-Reason") == [short]
    pieces = None
    for e, r in zip(got, out[1]["responses"]):
        assert r["status"] == 200 and r["reason"] == "OK " + fs, r
        assert header(r, "X-Echo-Auth") == ["Bearer " + fa]
        inj = header(r, "X-Echo-Injected")
        m = re.match(r"^Token (\S+) (\S+) \$5$", inj[0]) if len(inj) == 1 else None
        assert m and is_sentinel(m.group(1), 32) and is_sentinel(m.group(2), 28), inj
        pieces = pieces or (m.group(1), m.group(2))
        assert (m.group(1), m.group(2)) == pieces  # one stand-in per piece for the run
        expect = (e["rawhead"] + e["body"]).decode("latin-1")
        for real, fake in ((api, fa), (short, fs), (hdr, pieces[0]), (fsec, pieces[1])):
            expect = expect.replace(real, fake)
        assert r["body"] == expect and r["len"] == len(expect)
        # body: target, Authorization, body; and X-Echo-Auth. The reason
        # phrase, X-Reason and the body for the short one
        assert r["counts"] == {"API_KEY": 4, "SHORT_PW": 3}, r["counts"]
        assert r["absent"] == {"REV_API": True, "REV_SHORT": True, "REV_HDR": True,
                               "REV_FILE": True}
        # the lengths differ, so every framed answer is re-framed; one that
        # ends at close stays so
        te = [] if "eof=1" in e["line"] else ["chunked"]
        assert header(r, "Transfer-Encoding") == te and header(r, "Content-Length") == []
    cp.check_no_leak([("client output", json.dumps(out).encode())])


def test_empty_answer_from_an_inject_host_keeps_its_framing(cp):
    """An answer with Content-Length: 0 from a host whose sentinels differ
    in length from their values (so bodies are re-framed) still ends: the
    client reads it and the next request on the connection works."""
    short = cp.real("pw-", 10)
    s = cp.settings({"envVars": [mask("SHORT_PW", ["api.test"])]})
    out = cp.client(s, [http("api.test:%d" % cp.T, [{"target": "/emit?n=0"}, {"target": "/next"}],
                             timeout=2)], env={"SHORT_PW": short})
    cp.settle()
    r = out[0]["responses"]
    assert [x.get("status") for x in r] == [200, 200], r
    assert (r[0]["len"], r[1]["body"]) == (0, "hello GET /next\n")
    cp.check_no_leak()


def test_real_value_in_a_response_field_name_comes_back_as_sentinel(cp):
    """An answer that reflects a real value in a field name (here
    "X-Name-<value>: 1") shows the client its sentinel, never the value."""
    api = cp.real("sk-live-", 40)
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    out = cp.client(s, [env_op("API_KEY"), http("api.test:%d" % cp.T, [
        {"target": "/reflect", "headers": [["X-Name", "${API_KEY}"]]}], absent_rev=["REV_API"])],
        env={"API_KEY": api, "REV_API": api[::-1]})
    cp.settle()
    fa = out[0]["API_KEY"]
    (e,) = cp.requests()
    assert header(e, "X-Name") == [api]
    r = out[1]["responses"][0]
    assert r["status"] == 200
    assert header(r, "X-Name-" + fa) == ["1"], r["headers"]
    assert r["absent"] == {"REV_API": True}
    cp.check_no_leak([("client output", json.dumps(out).encode())])


def test_upgraded_stream_from_an_inject_host_holds_no_real_value(cp):
    """A WebSocket upgrade toward the inject host whose server writes the
    Authorization it received into the upgraded stream: the client never
    gets the real value (it is replaced there too, or the upgrade is not
    let through with a substituted credential)."""
    api = cp.real("sk-live-", 40)
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    ws = [["Connection", "Upgrade"], ["Upgrade", "websocket"], ["Sec-WebSocket-Version", "13"],
          ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Authorization", "Bearer ${API_KEY}"]]
    out = cp.client(s, [env_op("API_KEY"), http("api.test:%d" % cp.T, [
        {"target": "/ws", "headers": ws, "ws_read": 7 + 40 + 1 + 5}],
        absent_rev=["REV_API"], timeout=2)], env={"API_KEY": api, "REV_API": api[::-1]})
    cp.settle()
    fa = out[0]["API_KEY"]
    r = out[1]["responses"][0]
    assert r["absent"] == {"REV_API": True}, r
    if r.get("status") == 101:
        assert r["stream"] == "Bearer %s\nping\n" % fa
    cp.check_no_leak([("client output", json.dumps(out).encode())])


def test_large_echoed_body_is_replaced_across_boundaries(cp):
    """4 MiB answers with the real value written across 16 KiB and 64 KiB
    boundaries: equal lengths keep Content-Length and the client gets
    exactly the body with its sentinel in those places; a shorter value
    answered chunked comes back re-framed, each occurrence 14 bytes
    longer, exact."""
    T = cp.T
    api, short = cp.real(n=40), cp.real("pw-", 10)
    n = 4 * MIB
    at = [0, 16384 - 3, 65536 - 5, 3 * 65536 - 20, 2 * MIB - 1, n - 40]
    q = "/emit?n=%d&at=%s" % (n, ",".join(map(str, at)))
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    out = cp.client(s, [env_op("API_KEY"),
                        http("api.test:%d" % T, [{"target": q, "headers": [["X-Emit", "${API_KEY}"]]}],
                             watch=["API_KEY"])],
                    env={"API_KEY": api}, timeout=120)
    fa = out[0]["API_KEY"]
    r1 = out[1]["responses"][0]
    want1 = build_body(n, [(o, "v") for o in at], {"v": fa})
    assert (r1["status"], r1["len"], r1["sha256"]) == (200, n, sha256(want1))
    assert header(r1, "Content-Length") == [str(n)] and header(r1, "Transfer-Encoding") == []
    assert r1["counts"]["API_KEY"] == len(at)
    # the origin wrote the real value (X-Body-Sha256 is of what it sent)
    assert header(r1, "X-Body-Sha256") == [sha256(build_body(n, [(o, "v") for o in at],
                                                             {"v": api}))]

    s = cp.settings({"envVars": [mask("SHORT_PW", ["api.test"])]})
    out = cp.client(s, [env_op("SHORT_PW"),
                        http("api.test:%d" % T, [{"target": q + "&chunked=4093",
                                                  "headers": [["X-Emit", "${SHORT_PW}"]]}],
                             watch=["SHORT_PW"])],
                    env={"SHORT_PW": short}, timeout=120)
    cp.settle()
    fs = out[0]["SHORT_PW"]
    r2 = out[1]["responses"][0]
    want2 = build_body(n, [(o, "v") for o in at], {"v": short}).replace(short.encode(),
                                                                        fs.encode())
    assert (r2["status"], r2["len"], r2["sha256"]) == (200, n + 14 * len(at), sha256(want2))
    assert r2["counts"]["SHORT_PW"] == len(at) and header(r2, "Transfer-Encoding") == ["chunked"]
    cp.check_no_leak()


GREP = r'''
set -u
curl -sS --max-time 10 -i -o /tmp/got -H "Authorization: Bearer $API_KEY" \
     -H "X-Reason: $SHORT_PW" "https://api.test:$1/reflect?key=$API_KEY&chunked=7"
echo "curl=$?"
echo "size=$(wc -c < /tmp/got)"
echo "api=$(grep -c -F -- "$API_KEY" /tmp/got)"
echo "short=$(grep -c -F -- "$SHORT_PW" /tmp/got)"
for v in "$REV_API" "$REV_SHORT" "$REV_HDR"; do
    real=$(printf %s "$v" | rev)
    echo "real=$(grep -c -F -- "$real" /tmp/got)"
done
'''


def test_echo_seen_by_curl_holds_no_real_value(cp):
    """The same with curl and grep inside the sandbox: the bytes curl got
    back hold the sentinels and none of the real values."""
    api, short, hdr = cp.real(n=40), cp.real("pw-", 10), cp.real("hdr-", 32)
    creds = {"envVars": [mask("API_KEY", ["api.test"]), mask("SHORT_PW", ["api.test"])]}
    inject = [{"host": "api.test", "header": "X-Injected", "value": "${env:HDR_SECRET}"}]
    s = cp.settings(creds, injectHeaders=inject)
    env = {"API_KEY": api, "SHORT_PW": short, "HDR_SECRET": hdr, "REV_API": api[::-1],
           "REV_SHORT": short[::-1], "REV_HDR": hdr[::-1]}
    p = cp.run(s, "/bin/sh", "-c", GREP, "sh", str(cp.T), env=env)
    cp.settle()
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 7 and lines[0] == "curl=0", (p.stdout, p.stderr)
    assert int(lines[1].split("=")[1]) > 0, p.stdout
    # lines holding the API key's sentinel: the reflected request line and
    # Authorization, and X-Echo-Auth; the short one's: the reason phrase and
    # the reflected X-Reason
    assert lines[2:] == ["api=3", "short=2", "real=0", "real=0", "real=0"], p.stdout
    (e,) = cp.requests()
    assert header(e, "X-Injected") == [hdr] and header(e, "Authorization") == ["Bearer " + api]
    cp.check_no_leak()


UPLOAD = r'''
# a 3 MiB upload (curl asks Expect: 100-continue) with the sentinel at 1 MiB - 7
python3 -c 'import os
b = bytearray(b"x" * (3 << 20)); v = os.environ["API_KEY"].encode()
b[(1 << 20) - 7:(1 << 20) - 7 + len(v)] = v
open("/tmp/up", "wb").write(b)'
curl -sS --max-time 20 -o /tmp/up.out --data-binary @/tmp/up "https://api.test:$1/summary"
echo "upload=$?"
cat /tmp/up.out
'''


def test_curl_upload_with_expect_100_continue(cp):
    """curl's 3 MiB upload waits for 100 Continue (which comes back through
    the answer's rewriting), then its body is substituted on the way: the
    origin receives Content-Length bytes with the real value in place."""
    api = cp.real(n=40)
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    p = cp.run(s, "/bin/sh", "-c", UPLOAD, "sh", str(cp.T), env={"API_KEY": api})
    cp.settle()
    body = b"x" * (MIB - 7) + api.encode() + b"x" * (2 * MIB - 33)
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "upload=0", (p.stdout, p.stderr)
    assert json.loads(p.stdout.splitlines()[1]) == {"len": len(body), "sha256": sha256(body)}
    (up,) = cp.requests()
    assert header(up, "Expect") == ["100-continue"] and up["framing"] == "length"
    assert header(up, "Content-Length") == [str(len(body))]
    assert (up["len"], up["found"][api], up["sha256"]) == (len(body), [MIB - 7], sha256(body))
    cp.check_no_leak()


UPLOADS = r'''
# up to 20 uploads of 4 MiB (curl asks Expect: 100-continue) holding the
# sentinel; stop at the first that does not complete
python3 -c 'import os
b = bytearray(b"x" * (4 << 20)); v = os.environ["SHORT_PW"].encode()
b[100:100 + len(v)] = v
open("/tmp/up", "wb").write(b)'
for i in $(seq 1 20); do
    curl -sS --max-time 2 -o /tmp/out --data-binary @/tmp/up "https://api.test:$1/summary" ||
        { echo "upload $i failed"; exit 1; }
done
echo "all uploads done"
'''


def test_large_uploads_with_a_longer_sentinel_all_complete(cp):
    """curl uploads (4 MiB, Expect: 100-continue) to the inject host whose
    sentinel is longer than its value, so the body is re-framed chunked:
    every one completes, twenty in a row (a stalled one times out, and
    cordon may then die of the SIGPIPE bug below: either is a failure)."""
    short = cp.real("pw-", 10)
    s = cp.settings({"envVars": [mask("SHORT_PW", ["api.test"])]})
    p = cp.run(s, "/bin/sh", "-c", UPLOADS, "sh", str(cp.T), env={"SHORT_PW": short},
               timeout=90)
    cp.settle()
    assert (p.returncode, p.stdout) == (0, "all uploads done\n"), (p.stdout, p.stderr)
    got = cp.requests()
    assert len(got) == 20 and all(e["found"][short] == [100] for e in got)
    cp.check_no_leak()


GONE = r'''
import socket, ssl, sys, time
port = int(sys.argv[1])
for i in range(6):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(b"CONNECT api.test:%d HTTP/1.1\r\nHost: api.test:%d\r\n\r\n" % (port, port))
    s.recv(100)
    ss = ssl.create_default_context(cafile="/dev/cordon-ca.pem").wrap_socket(
        s, server_hostname="api.test")
    ss.sendall(b"GET /emit?n=1048576&delay=200 HTTP/1.1\r\nHost: api.test:%d\r\n"
               b"X-Emit: %s\r\n\r\n" % (port, sys.argv[2].encode()))
    # read what came so far (TLS session tickets), so that the close is a
    # clean FIN and not a reset for unread data
    ss.settimeout(0.05)
    try:
        ss.recv(1)
    except (socket.timeout, ssl.SSLError):
        pass
    ss.close()  # gone before the answer comes
    time.sleep(0.25)  # the answer is written into the closed connection
print("alive")
'''


def test_client_that_leaves_before_the_answer_does_not_kill_cordon(cp):
    """Six clients send a request toward the inject host and close at once;
    the answers arrive after they are gone. cordon lives on: the command
    finishes and its status is cordon's."""
    api = cp.real(n=40)
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})
    p = cp.run(s, PY, "-c", GONE, str(cp.T), "x", env={"API_KEY": api})
    cp.settle()
    assert (p.returncode, p.stdout) == (0, "alive\n"), (p.returncode, p.stdout, p.stderr)
    cp.check_no_leak()


# ---------------------------------------------------------------------------
# 6. plain HTTP

def test_plain_http_without_allow_plaintext_inject_sends_the_sentinel(cp):
    """Without allowPlaintextInject, a plain-HTTP request to the inject host
    carries the sentinel unchanged (target, header, body) and the client's
    Authorization is stripped all the same; the same request through an
    intercepted tunnel gets the real values."""
    T, H = cp.T, cp.H
    api = cp.real(n=40)
    s = cp.settings({"envVars": [mask("API_KEY", ["api.test"])]})

    def req(target):
        return {"method": "POST", "target": target,
                "headers": [["Authorization", "Bearer ${API_KEY}"], ["X-Key", "${API_KEY}"]],
                "body": "k=${API_KEY}"}

    out = cp.client(s, [env_op("API_KEY"),
                        plain([req("http://api.test:%d/p?k=${API_KEY}" % H)]),
                        http("api.test:%d" % T, [req("/p?k=${API_KEY}")])], env={"API_KEY": api})
    cp.settle()
    fa = out[0]["API_KEY"]
    assert [x["responses"][0]["status"] for x in out[1:]] == [200, 200]
    p, t = cp.requests()
    assert (p["tls"], p["line"], p["body"]) == (False, "POST /p?k=%s HTTP/1.1" % fa,
                                                ("k=" + fa).encode())
    assert p["headers"] == [["Host", "api.test:%d" % H], ["X-Key", fa], ["Content-Length", "42"],
                            ["Connection", "keep-alive"]]
    assert (t["tls"], t["line"], header(t, "Authorization"), t["body"]) == \
        (True, "POST /p?k=%s HTTP/1.1" % api, ["Bearer " + api], ("k=" + api).encode())
    assert [r[2:] for r in requests_audit(cp)] == [
        ("api.test", "/p?k=" + fa, 200, None, ["Authorization"]),
        ("api.test", "/p?k=" + fa, 200, ["credentials.envVars[0] (API_KEY)"], None)]
    cp.check_no_leak()


def test_plain_http_with_allow_plaintext_inject_substitutes(cp):
    """allowPlaintextInject (no tlsTerminate): plain HTTP to the inject host
    gets the real values (target, Authorization, header, body), other.test
    the sentinels; an echo comes back as sentinels."""
    H = cp.H
    api = cp.real(n=40)
    creds = {"allowPlaintextInject": True, "envVars": [mask("API_KEY", ["api.test"])]}
    s = cp.settings(creds, tls=False)
    req = {"method": "POST", "target": "http://api.test:%d/reflect?k=${API_KEY}" % H,
           "headers": [["Authorization", "Bearer ${API_KEY}"], ["X-Key", "${API_KEY}"]],
           "body": "k=${API_KEY}"}
    other = dict(req, target="http://other.test:%d/p?k=${API_KEY}" % H)
    out = cp.client(s, [env_op("API_KEY"), plain([req], watch=["API_KEY"],
                                                  absent_rev=["REV_API"]), plain([other])],
                    env={"API_KEY": api, "REV_API": api[::-1]})
    cp.settle()
    fa = out[0]["API_KEY"]
    a, o = cp.requests()
    assert (a["tls"], a["line"], header(a, "Authorization"), header(a, "X-Key"), a["body"]) == \
        (False, "POST /reflect?k=%s HTTP/1.1" % api, ["Bearer " + api], [api],
         ("k=" + api).encode())
    assert header(a, "Accept-Encoding") == ["identity"]
    assert (o["line"], header(o, "Authorization"), o["body"]) == \
        ("POST /p?k=%s HTTP/1.1" % fa, ["Bearer " + fa], ("k=" + fa).encode())
    r = out[1]["responses"][0]
    assert r["status"] == 200 and header(r, "X-Echo-Auth") == ["Bearer " + fa]
    # target, Authorization, X-Key and body reflected, and X-Echo-Auth
    assert r["counts"] == {"API_KEY": 5} and r["absent"] == {"REV_API": True}
    assert [x[2:] for x in requests_audit(cp)] == [
        ("api.test", "/reflect?k=" + fa, 200, ["credentials.envVars[0] (API_KEY)"], None),
        ("other.test", "/p?k=" + fa, 200, None, None)]
    cp.check_no_leak()


def test_plain_http_toward_an_inject_headers_host(cp):
    """injectHeaders with tlsTerminate and without allowPlaintextHeaderSet:
    plain HTTP to that host is refused with 403 and never reaches the
    origin; other hosts and the intercepted tunnel work. With
    allowPlaintextHeaderSet (and no tlsTerminate) the header is added on
    plain HTTP."""
    T, H = cp.T, cp.H
    tok = cp.real("tok-", 30)
    inject = [{"host": "api.test", "header": "X-Injected", "value": "${env:HDR_TOKEN}"}]
    s = cp.settings(None, injectHeaders=inject)
    out = cp.client(s, [plain([{"target": "http://api.test:%d/h" % H}]),
                        plain([{"target": "http://other.test:%d/h" % H}]),
                        http("api.test:%d" % T, [{"target": "/h"}])], env={"HDR_TOKEN": tok})
    cp.settle()
    r = out[0]["responses"][0]
    assert (r["status"], r["reason"], header(r, "X-Proxy-Error")) == \
        (403, "Forbidden", ["blocked-by-rule"])
    assert r["body"] == "cordon: api.test:%d: %s\n" % (H, PLAINTEXT_HDR_WHY)
    assert [x["responses"][0]["status"] for x in out[1:]] == [200, 200]
    got = cp.requests()
    assert [(e["tls"], e["line"], header(e, "X-Injected")) for e in got] == [
        (False, "GET /h HTTP/1.1", []), (True, "GET /h HTTP/1.1", [tok])]
    assert got[0]["headers"][0] == ["Host", "other.test:%d" % H]
    assert [x[:5] + (x[5],) for x in requests_audit(cp)] == [
        ("deny", "GET", "api.test", "/h", 403, None),
        ("allow", "GET", "other.test", "/h", 200, None),
        ("allow", "GET", "api.test", "/h", 200, ["network.injectHeaders[0]"])]
    assert cp.audit("net.request")[0]["reason"] == PLAINTEXT_HDR_WHY

    cp.reset()
    s = cp.settings(None, tls=False, injectHeaders=inject, allowPlaintextHeaderSet=True)
    out = cp.client(s, [plain([{"target": "http://api.test:%d/h" % H,
                                "headers": [["X-Injected", "mine"]]}])], env={"HDR_TOKEN": tok})
    cp.settle()
    assert out[0]["responses"][0]["status"] == 200
    (e,) = cp.requests()
    assert header(e, "X-Injected") == [tok]
    assert [x[5:] for x in requests_audit(cp)] == [(["network.injectHeaders[0]"], ["X-Injected"])]
    cp.check_no_leak()


# ---------------------------------------------------------------------------
# 7. opaque tunnels

def test_opaque_tunnel_to_a_credential_host_is_refused(cp):
    """allowPlaintextInject without tlsTerminate: a CONNECT or a SOCKS
    tunnel to the inject host would carry the client's own key unseen, so
    both are refused (403 blocked-by-rule; SOCKS reply 2) and nothing
    reaches the origin; a tunnel to other.test is opaque and works (the
    client sees the origin's own certificate, the origin the sentinel)."""
    T = cp.T
    api = cp.real(n=40)
    creds = {"allowPlaintextInject": True, "envVars": [mask("API_KEY", ["api.test"])]}
    s = cp.settings(creds, tls=False)
    req = {"target": "/o", "headers": [["Authorization", "Bearer ${API_KEY}"]]}
    out = cp.client(s, [env_op("API_KEY"),
                        http("api.test:%d" % T, [req], cafile="test-ca.pem"),
                        http("api.test:%d" % T, [req], via="socks", cafile="test-ca.pem"),
                        http("other.test:%d" % T, [req], cafile="test-ca.pem"),
                        http("other.test:%d" % T, [req], via="socks", cafile="test-ca.pem")],
                    env={"API_KEY": api})
    cp.settle()
    fa = out[0]["API_KEY"]
    c = out[1]["connect"]
    assert (c["status"], c["reason"], header(c, "X-Proxy-Error")) == \
        (403, INTERCEPT_WHY, ["blocked-by-rule"])
    assert c["body"] == "cordon: api.test:%d: %s\n" % (T, INTERCEPT_WHY)
    assert out[2]["socks"] == 2 and "responses" not in out[2]
    for o in out[3:]:
        assert o["tls"] == {"ok": True, "issuer": "cordon credentials test CA"}
        assert o["responses"][0]["status"] == 200
    got = cp.requests()
    assert [(e["sni"], header(e, "Authorization")) for e in got] == \
        [("other.test", ["Bearer " + fa])] * 2
    assert connects(cp) == [("deny", "api.test", T, "connect", INTERCEPT_WHY),
                            ("deny", "api.test", T, "socks", INTERCEPT_WHY),
                            ("allow", "other.test", T, "connect", None),
                            ("allow", "other.test", T, "socks", None)]
    assert cp.audit("net.request") == []
    cp.check_no_leak()


def test_opaque_tunnel_to_an_inject_headers_host_is_refused(cp):
    """allowPlaintextHeaderSet without tlsTerminate: tunnels to the
    injectHeaders host are refused the same way."""
    T = cp.T
    tok = cp.real("tok-", 30)
    s = cp.settings(None, tls=False, allowPlaintextHeaderSet=True,
                    injectHeaders=[{"host": "api.test", "header": "X-I",
                                    "value": "${env:HDR_TOKEN}"}])
    out = cp.client(s, [http("api.test:%d" % T, [], tls=False),
                        http("api.test:%d" % T, [], via="socks", tls=False)],
                    env={"HDR_TOKEN": tok})
    cp.settle()
    assert out[0]["connect"]["status"] == 403 and out[1]["socks"] == 2
    assert cp.reached() == []
    assert connects(cp) == [("deny", "api.test", T, "connect", INTERCEPT_WHY),
                            ("deny", "api.test", T, "socks", INTERCEPT_WHY)]
    cp.check_no_leak()


def test_excluded_host_of_the_default_inject_hosts_stays_opaque(cp):
    """A secret with the default injectHosts (allowedDomains) and
    excluded.test in tlsTerminate.excludeDomains: the user chose to leave
    excluded.test alone, so its tunnel (CONNECT and SOCKS) is opaque: the
    client sees the origin's certificate and the origin the sentinel;
    api.test is intercepted and gets the real value. Naming an excluded
    host in injectHosts explicitly is a settings error instead."""
    T = cp.T
    api = cp.real(n=40)
    s = cp.settings({"envVars": [mask("API_KEY")]}, tls={"excludeDomains": ["excluded.test"]})
    req = {"target": "/x", "headers": [["X-Key", "${API_KEY}"]]}
    out = cp.client(s, [env_op("API_KEY"),
                        http("excluded.test:%d" % T, [req], cafile="test-ca.pem"),
                        http("excluded.test:%d" % T, [req], via="socks", cafile="test-ca.pem"),
                        http("api.test:%d" % T, [req])], env={"API_KEY": api})
    cp.settle()
    fa = out[0]["API_KEY"]
    assert [o["tls"]["issuer"] for o in out[1:3]] == ["cordon credentials test CA"] * 2
    assert out[3]["tls"]["issuer"].startswith("cordon per-run CA")
    got = cp.requests()
    assert [(e["sni"], header(e, "X-Key")) for e in got] == [
        ("excluded.test", [fa]), ("excluded.test", [fa]), ("api.test", [api])]
    assert [c[:4] for c in connects(cp)] == [("allow", "excluded.test", T, "connect"),
                                             ("allow", "excluded.test", T, "socks"),
                                             ("allow", "api.test", T, "connect")]

    s = cp.settings({"envVars": [mask("API_KEY", ["excluded.test"])]},
                    tls={"excludeDomains": ["excluded.test"]})
    p = cp.run(s, "/bin/true", env={"API_KEY": api})
    assert (p.returncode, p.stdout) == (125, "")
    assert p.stderr == ("cordon: %s: /credentials/envVars/0/injectHosts/0: \"excluded.test\" is "
                        "in tlsTerminate.excludeDomains, so nothing could be injected there\n" % s)
    cp.check_no_leak()


# ---------------------------------------------------------------------------
# 9. nothing of a real value in what cordon writes

def test_no_real_value_in_audit_stream_debug_log_or_policy(cp):
    """One run that uses every kind of credential (masked variable, extract,
    JWT, file, injected header from a variable and a file, a stripped
    header), with --debug and the audit stream on a descriptor, and
    --print-policy: no real value in any of it, nor in any file cordon
    wrote (audit files, the protect registry)."""
    T = cp.T
    api, pw, hdr, fsec = cp.real(n=40), cp.real("pw-", 12), cp.real("hdr-", 32), cp.real("fh-", 28)
    ftok = cp.real("file-", 30)
    f = cp.secret_file("token.txt", ftok + "\n")
    hf = cp.secret_file("hdr.txt", fsec + "\n")
    creds = {"envVars": [mask("API_KEY", ["api.test"]),
                         mask("DB_URL", ["api.test"], extract="://[^:/]+:([^@]+)@")],
             "files": [{"path": f, "mode": "mask", "injectHosts": ["api.test"]}]}
    inject = [{"host": "api.test", "header": "X-Injected",
               "value": "${env:HDR_SECRET}:${file:%s}" % hf}]
    s = cp.settings(creds, injectHeaders=inject, stripRequestHeaders=["x-debug"])
    env = {"API_KEY": api, "DB_URL": "postgres://u:%s@db/x" % pw, "HDR_SECRET": hdr}
    req = {"method": "POST", "target": "/reflect?k=${API_KEY}",
           "headers": [["Authorization", "Bearer ${API_KEY}"], ["X-Db", "${DB_URL}"],
                       ["X-File", "${FILETOK}"], ["X-Debug", "1"], ["Cookie", "c=1"]],
           "body": "${API_KEY}"}
    op = http("api.test:%d" % T, [req, dict(req, target="/bad?k=${API_KEY}")],
              files={"FILETOK": f})
    stream = cp.sb.path("outside", "stream.jsonl")
    fd = os.open(stream, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        p = cp.run(s, PY, "-c", creds_lab.CLIENT_SRC, json.dumps([op]),
                   opts=("--debug", "--audit-fd", str(fd)), env=env, pass_fds=(fd,),
                   audit=False)
    finally:
        os.close(fd)
    cp.settle()
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])[0]
    assert [r["status"] for r in res["responses"]] == [200, 200]
    got = cp.requests()
    assert [header(e, "X-Injected") for e in got] == [["%s:%s" % (hdr, fsec)]] * 2
    assert all(header(e, "X-File") == [ftok] and e["body"] == api.encode() for e in got)
    with open(stream, "rb") as fh:
        recs = [json.loads(x) for x in fh.read().splitlines()]
    reqs = [r for r in recs if r["event"] == "net.request"]
    assert len(reqs) == 2 and all(sorted(r["stripped"]) == ["Cookie", "X-Debug"] for r in reqs)
    assert "--debug" not in p.stderr and p.stderr  # --debug explained the run
    pp = cp.sb.run("-s", s, "--print-policy", env=env)
    assert pp.returncode == 0
    cp.outputs += [("print-policy", pp.stdout), ("print-policy stderr", pp.stderr)]
    # a value may hold a literal secret: --print-policy hides every one
    assert json.loads(pp.stdout)["network"]["injectHeaders"] == [
        {"host": "api.test", "header": "X-Injected", "value": "<hidden>"}]
    cp.check_no_leak()
