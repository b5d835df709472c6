"""Test-side helpers of the request-rule tests (test_request_rules.py).

`Rules` is egress_helpers.Net with settings that carry network.requestRules
(and, for HTTPS, network.tlsTerminate with the lab's CA as upstreamCaFile),
and a way to run egress_probe.py's "script" operation: named connections to
the proxy (plain, through CONNECT or SOCKS5, with TLS inside when asked)
driven step by step. The helpers below build those steps and the exact bytes
of each request, and check refusals the way every test must: the answer, the
audit record, and what the lab's origin logged.
"""
import json
import time

import egress_lab
from egress_helpers import Net, denied_body, header

API = "api.allowed.test"      # the host the rules cover in most tests
WWW = "www.allowed.test"      # an allowed host no rule covers
CORDON_CA = "/dev/cordon-ca.pem"

DENY_REASON = "the request matches a deny rule (requestRules[%d]: deny %s)"
NO_ALLOW_REASON = "the request matches no allow rule for this host (requestRules[%d])"
TUNNEL_REASON = ("request rules cover this host, so its traffic must be intercepted "
                 "(set network.tlsTerminate; the host must not be in excludeDomains)")
TOO_LARGE_REASON = ("the request body is larger than the rules allow (maxRequestBytes or "
                    "maxSessionBytes)")
GREW_REASON = ("the request body grew larger than the rules allow (maxRequestBytes or "
               "maxSessionBytes)")
GREW_BODY = "the request body grew larger than the rules allow"


def deny_reason(i, pattern):
    return DENY_REASON % (i, pattern)


def no_allow_reason(i):
    return NO_ALLOW_REASON % i


class Rules(Net):
    def __init__(self, sb, lab):
        super().__init__(sb, lab)
        # The lab's origin certificate authority, for the proxy's upstream
        # verification when it terminates TLS (read by cordon on the host).
        self.lab_ca = sb.write("outside/lab-ca.pem", lab.ca_pem)

    def rules(self, rules, tls=False, mode=None, allow=("allowed.test", "*.allowed.test"),
              **extra):
        """Settings with these request rules. tls: True (tlsTerminate {}) or
        tlsTerminate's value; mode: ambiguousRequestTarget; extra: more
        network keys."""
        net = {"allowedDomains": list(allow),
               "dnsServers": ["127.0.0.1:%d" % self.ports["dns"]],
               "requestRules": rules}
        if tls:
            net["tlsTerminate"] = {} if tls is True else tls
            net["upstreamCaFile"] = self.lab_ca
        if mode is not None:
            net["ambiguousRequestTarget"] = mode
        net.update(extra)
        self.n += 1
        return self.sb.settings({"network": net, "filesystem": {"allowWrite": [self.sb.ws]}},
                                name="rules-settings-%d.json" % self.n)

    def scripts(self, settings, *scripts):
        """Run several egress_probe "script" operations in one cordon run;
        one list of step results per script."""
        out = self.probe(settings, [{"op": "script", "steps": list(s)} for s in scripts])
        assert len(out) == len(scripts)
        return out

    def script(self, settings, steps):
        return self.scripts(settings, steps)[0]

    def wait_events(self, ev, n, timeout=5.0):
        """The origins' `ev` events once there are n of them: an event the
        origin logs when a connection ends can come just after cordon has
        exited. A bound on waiting, never a timing assertion."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.events(ev=ev)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.02)


# ---------------------------------------------------------------------------
# requests as bytes (latin-1 text)

def body_bytes(n, seed=None):
    """n deterministic bytes as latin-1 text (the origin logs their sha256)."""
    return egress_lab.det_bytes(n if seed is None else seed)[:n].decode("latin-1")


def chunked(body, size):
    """body (text) in chunks of `size`, with the last chunk."""
    parts = ["%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return "".join(parts) + "0\r\n\r\n"


def request(method, target, host, headers=(), body=None, te_chunked=None, close=False):
    """The exact text of one request. body: text with Content-Length, or
    with te_chunked=N in chunks of N (Transfer-Encoding: chunked)."""
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: " + host]
    lines += ["%s: %s" % kv for kv in headers]
    data = ""
    if body is not None and te_chunked:
        lines.append("Transfer-Encoding: chunked")
        data = chunked(body, te_chunked)
    elif body is not None:
        lines.append("Content-Length: %d" % len(body.encode("latin-1")))
        data = body
    if close:
        lines.append("Connection: close")
    return "\r\n".join(lines) + "\r\n\r\n" + data


def plain(method, host, path, port=80, **kw):
    """A proxy request in absolute form to http://host[:port]path."""
    auth = host if port == 80 else "%s:%d" % (host, port)
    return request(method, "http://%s%s" % (auth, path), auth, **kw)


# ---------------------------------------------------------------------------
# script steps

def open_plain(c="a"):
    return {"do": "open", "c": c}


def open_tls(host, port=443, c="a", sni=None, socks=False):
    """A CONNECT (or SOCKS5) tunnel with TLS inside, trusting cordon's CA."""
    st = {"do": "open", "c": c, "tls": {"sni": sni or host, "cafile": CORDON_CA}}
    if socks:
        st["socks"] = [host, port]
    else:
        st["connect"] = "%s:%d" % (host, port)
    return st


def open_connect(host, port, c="a"):
    return {"do": "open", "c": c, "connect": "%s:%d" % (host, port)}


def send(data, c="a", times=1):
    st = {"do": "send", "c": c, "data": data}
    if times != 1:
        st["times"] = times
    return st


def read(c="a", head=False):
    return {"do": "read", "c": c, "head": head}


def rest(c="a", timeout=None):
    st = {"do": "rest", "c": c}
    if timeout is not None:
        st["timeout"] = timeout
    return st


def sleep(s):
    return {"do": "sleep", "s": s}


def one_plain(method, host, path, port=80, **kw):
    """One request through the plain HTTP proxy: [open, send, read]."""
    return [open_plain(), send(plain(method, host, path, port, **kw)),
            read(head=method == "HEAD")]


def one_tls(method, host, path, port=443, **kw):
    """One request inside an intercepted tunnel: [open, send, read]."""
    auth = host if port == 443 else "%s:%d" % (host, port)
    return [open_tls(host, port), send(request(method, path, auth, **kw)),
            read(head=method == "HEAD")]


# ---------------------------------------------------------------------------
# checks

def blocked(resp, host, port, reason, status=403, tag="blocked-by-rule", head=False):
    """A refusal written by cordon: status, X-Proxy-Error, body naming
    host, port and reason, connection closed."""
    assert resp.get("status") == status, json.dumps(resp, indent=1)
    assert header(resp, "X-Proxy-Error") == tag, resp
    assert header(resp, "Connection") == "close", resp
    if not head:
        assert resp["body"] == denied_body(host, port, reason), resp


def find(recs, **kw):
    return [r for r in recs if all(r.get(k) == v for k, v in kw.items())]


def one(recs, **kw):
    got = find(recs, **kw)
    assert len(got) == 1, "expected one record with %r, got %r\nall: %s" % (
        kw, got, json.dumps(recs, indent=1))
    return got[0]


def request_record(net, **kw):
    """The one net.request record matching kw."""
    return one(net.audit("net.request"), **kw)


def origin_lines(net, srv=("http", "https")):
    """(server, request line) of every request head the origins saw."""
    return [(e["srv"], e["line"]) for e in net.requests(srv=srv)]
