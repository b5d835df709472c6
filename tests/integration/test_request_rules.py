"""Request rules (issue 8): network.requestRules allow an API, not every
function behind its domain.

Each test runs cordon as root and as uid 65534 (the `sb` fixture) in the
egress lab (egress_lab.py): api.allowed.test and www.allowed.test resolve to
the lab's HTTP origin (port 80) and HTTPS origin (port 443, a certificate
from the lab's CA, which the proxy trusts through network.upstreamCaFile when
it terminates TLS with network.tlsTerminate). Inside the sandbox
egress_probe.py's "script" operation writes exact bytes to the proxy (plain,
through CONNECT or SOCKS5, with TLS inside), or real clients (curl, git) run.

Every refusal is checked three ways: the answer (status, X-Proxy-Error, the
body naming host, port and rule), the audit record (net.request: verdict,
method, host, port, path as normalised, status, rule, reason), and the
origin's log (it never saw the refused request; for plain HTTP it was not
even dialled). Cases are numbered as in egress-attacks.md (T11, T12, T13,
T16, T17, T27).

What the code does, as these tests pin it down (src/proxy/proxy.c
judge_request, src/proxy/pathnorm.c, src/policy/reqrule.c):
  - only the path is matched: the query is kept as sent (after a control
    byte check) and a pattern may not contain "?" (a settings error), so
    "GET /**/info/refs" also allows info/refs?service=git-receive-pack;
    push is stopped at POST .../git-receive-pack;
  - a denied plain-HTTP request is refused before any DNS query or dial; in
    an intercepted tunnel the upstream TLS connection already exists, but
    no request reaches it;
  - maxSessionBytes is per rule (a "*.allowed.test" rule's budget is shared
    by all its hosts), counts bodies that completed and the forwarded part
    of bodies that were cut, and lasts for one cordon run.
"""
import json
import os

import pytest

from egress_helpers import PUBLIC4, header, req_header
from rules_helpers import (API, GREW_BODY, GREW_REASON, TOO_LARGE_REASON, TUNNEL_REASON, WWW,
                           Rules, blocked, body_bytes, deny_reason, find, no_allow_reason,
                           one_plain, one_tls, open_connect, open_plain, open_tls, origin_lines,
                           plain, read, request, rest, send, sleep)
from egress_lab import sha256

ANTHROPIC = {"host": API, "allow": ["POST /v1/messages"], "deny": ["* /v1/files"]}
DENY_FILES = deny_reason(0, "* /v1/files")
NO_ALLOW = no_allow_reason(0)


@pytest.fixture
def net(sb, egress_lab):
    return Rules(sb, egress_lab)


def latin1_sha(text):
    return sha256(text.encode("latin-1"))


def rec_fields(r, *keys):
    return tuple(r.get(k) for k in keys)


# ---------------------------------------------------------------------------
# 1. An Anthropic-style rule, over HTTPS (intercepted) and plain HTTP

API_HEADERS = [("Content-Type", "application/json"), ("x-api-key", "sk-placeholder"),
               ("anthropic-version", "2023-06-01"), ("anthropic-beta", "files-api-2025-04-14")]
API_BODY = json.dumps({"model": "m", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "hi " + "x" * 300}]})


def test_anthropic_rule_allows_messages_and_refuses_files_over_https_and_http(net):
    s = net.rules([ANTHROPIC], tls=True)
    res = net.scripts(
        s,
        one_tls("POST", API, "/v1/messages", headers=API_HEADERS, body=API_BODY),
        one_tls("POST", API, "/v1/files", headers=API_HEADERS, body=API_BODY),
        one_tls("GET", API, "/v1/messages"),
        one_plain("POST", API, "/v1/messages", headers=API_HEADERS, body=API_BODY),
        one_plain("POST", API, "/v1/files", headers=API_HEADERS, body=API_BODY),
        one_plain("GET", API, "/v1/messages"),
    )
    for (ok, files, get), srv, port in ((res[0:3], "https", 443), (res[3:6], "http", 80)):
        assert ok[-1]["status"] == 200, ok
        assert ok[-1]["body"] == "hello from %s POST /v1/messages\n" % srv
        assert header(ok[-1], "X-Origin") == srv
        blocked(files[-1], API, port, DENY_FILES)
        blocked(get[-1], API, port, NO_ALLOW)

    # The origin: exactly the two allowed requests, head and body intact
    # (Host from the target, hop-by-hop fields replaced by cordon's own).
    reqs = net.requests()
    assert [(e["srv"], e["line"]) for e in reqs] == [("https", "POST /v1/messages HTTP/1.1"),
                                                      ("http", "POST /v1/messages HTTP/1.1")]
    want_headers = [["Host", API]] + [list(h) for h in API_HEADERS] + \
        [["Content-Length", str(len(API_BODY))], ["Connection", "keep-alive"]]
    for e in reqs:
        assert e["headers"] == want_headers, e
    bodies = net.events(ev="body")
    assert [(b["srv"], b["len"], b["sha256"]) for b in bodies] == \
        [(srv, len(API_BODY), latin1_sha(API_BODY)) for srv in ("https", "http")]
    # The plain refusals were made before any dial: the HTTP origin
    # accepted one connection only (the allowed request's).
    assert len(net.events(srv="http", ev="accept")) == 1

    recs = net.audit("net.request")
    keys = ("verdict", "method", "host", "port", "path", "status", "rule", "reason")
    assert [rec_fields(r, *keys) for r in recs] == [
        ("allow", "POST", API, 443, "/v1/messages", 200, "POST /v1/messages", None),
        ("deny", "POST", API, 443, "/v1/files", 403, "* /v1/files", DENY_FILES),
        ("deny", "GET", API, 443, "/v1/messages", 403, "requestRules[0]", NO_ALLOW),
        ("allow", "POST", API, 80, "/v1/messages", 200, "POST /v1/messages", None),
        ("deny", "POST", API, 80, "/v1/files", 403, "* /v1/files", DENY_FILES),
        ("deny", "GET", API, 80, "/v1/messages", 403, "requestRules[0]", NO_ALLOW),
    ]
    # The plain refusals made no net.connect: there was no connection.
    plain_connects = [r for r in net.audit("net.connect") if r["port"] == 80]
    assert len(plain_connects) == 1 and plain_connects[0]["verdict"] == "allow"


def test_audit_rule_of_a_no_allow_denial_is_the_same_in_tunnels_and_plain_http(net):
    s = net.rules([ANTHROPIC], tls=True)
    net.scripts(s, one_tls("GET", API, "/v1/messages"), one_plain("GET", API, "/v1/messages"))
    tls_rec, plain_rec = net.audit("net.request")
    assert (tls_rec["port"], plain_rec["port"]) == (443, 80)
    assert tls_rec.get("rule") != "*.allowed.test", tls_rec
    assert tls_rec.get("rule") == plain_rec.get("rule"), (tls_rec, plain_rec)


# ---------------------------------------------------------------------------
# 2. T11: path spellings

AMB_SLASH = 'an encoded "/" or "\\" in the path'
AMB_DOT = 'an encoded "." in the path'
AMB_BSL = 'a "\\" in the path'
AMB_CTL = "an encoded control byte (or NUL) in the path"
AMB_EMPTY = 'an empty path segment ("//")'
AMB_ROOT = '".." climbs above the root'
AMB_UTF8 = "percent-escapes that are not UTF-8 (an overlong or stray byte)"
AMB_UTF8_SHORT = "percent-escapes that are not UTF-8 (a sequence cut short)"
AMB_QCTL = "an encoded control byte (or NUL) in the query"
BAD_FRAGMENT = "fragment ('#') in request-target"
BAD_CTL = "control, space or non-ASCII byte in request-target (RFC 9112 3.2)"

# Two rules: api.allowed.test has an allow list (so any spelling it does not
# name is refused), www.allowed.test only denies (the case where a spelling
# could slip past). Outcomes:
#   ("deny", path)    403 by "deny * /v1/files"; path is what was judged
#   ("noallow", path) 403, no allow pattern matched (api only)
#   ("fwd", path)     forwarded: the origin received exactly this target
#   ("amb", why)      400 ambiguous-target, never forwarded
#   ("bad", why)      400 bad-request from the HTTP parser, never forwarded
SPELLING_RULES = [ANTHROPIC, {"host": WWW, "deny": ["* /v1/files"]}]


def D(p):
    return ("deny", p)


def N(p):
    return ("noallow", p)


def F(p):
    return ("fwd", p)


def A(why):
    return ("amb", why)


# spelling, outcome on api (allow list), outcome on www (deny only; None: same)
SPELLINGS = [
    # egress-attacks.md T11's list
    ("/v1/messages/../files", D("/v1/files"), None),
    ("/v1/./files", D("/v1/files"), None),
    ("//v1/files", A(AMB_EMPTY), None),
    ("/v1%2Ffiles", A(AMB_SLASH), None),
    ("/v1/messages/..%2Ffiles", A(AMB_SLASH), None),
    ("/v1/messages/%2e%2e/files", A(AMB_DOT), None),
    ("/V1/FILES", D("/V1/FILES"), None),
    ("/v1\\files", A(AMB_BSL), None),
    ("/v1/files%00", A(AMB_CTL), None),
    ("/v1/files;x", D("/v1/files;x"), None),
    # more of the same family
    ("/v1%2ffiles", A(AMB_SLASH), None),
    ("/v1%5Cfiles", A(AMB_SLASH), None),
    ("/v1/messages/%2E%2E/files", A(AMB_DOT), None),
    ("/v1/files/%2e", A(AMB_DOT), None),
    ("/v1/%c0%ae%c0%ae/files", A(AMB_UTF8), None),        # overlong UTF-8 "."
    ("/v1/%c0%afetc", A(AMB_UTF8), None),                  # overlong UTF-8 "/"
    ("/v1/files%e2%80", A(AMB_UTF8_SHORT), None),
    ("/v1/files%09", A(AMB_CTL), None),
    ("/v1/files%7f", A(AMB_CTL), None),
    ("/..", A(AMB_ROOT), None),
    ("/v1/../../files", A(AMB_ROOT), None),
    ("/v1/files?a=%00", A(AMB_QCTL), None),
    ("/v1/messages?" + "q" * 9000, A("the request target is too long"), None),
    ("/v1/files#x", ("bad", BAD_FRAGMENT), None),
    ("/v1/files\t", ("bad", BAD_CTL), None),
    ("/v1/files?x", D("/v1/files?x"), None),               # the query is not matched
    ("/v1/fi%6Ces?a=%2F", D("/v1/files?a=%2F"), None),     # unreserved decoded, query as sent
    ("/v1/%66iles", D("/v1/files"), None),
    ("/v1;x/files", D("/v1;x/files"), None),
    ("/v1/FILES;jsessionid=1", D("/v1/FILES;jsessionid=1"), None),
    # spellings that do not name /v1/files: refused by the allow list,
    # forwarded (normalised) by a deny-only rule
    ("/v1/%252e%252e/files", N("/v1/%252e%252e/files"), F("/v1/%252e%252e/files")),
    ("/v1/a%3fb", N("/v1/a%3Fb"), F("/v1/a%3Fb")),        # hex case folded
    ("/v1/files/..", N("/v1/"), F("/v1/")),
    ("/v1/Messages", N("/v1/Messages"), F("/v1/Messages")),
    ("/v1/messages;x", N("/v1/messages;x"), F("/v1/messages;x")),
    ("/v1/files/", D("/v1/files/"), D("/v1/files/")),     # deny ignores one final "/"
    # allowed, spelled differently: forwarded in the normalised spelling
    ("/v1/./messages", F("/v1/messages"), None),
    ("/v1/x/../messages", F("/v1/messages"), None),
    ("/v1/%6Dessages", F("/v1/messages"), None),
    ("/v1/messages?beta=true", F("/v1/messages?beta=true"), None),
]


def check_outcome(resp, rec, host, port, spelling, outcome, tls=False):
    """One request's answer and audit record against its expected outcome;
    returns the target the origin must have received, or None."""
    kind, val = outcome
    ctx = "%s %r -> %r" % (host, spelling, outcome)
    if kind in ("deny", "noallow"):
        reason = deny_reason(0 if host == API else 1, "* /v1/files") if kind == "deny" \
            else no_allow_reason(0)
        blocked(resp, host, port, reason)
        assert rec_fields(rec, "verdict", "method", "host", "port", "path", "status",
                          "reason") == ("deny", "POST", host, port, val, 403, reason), ctx
        if kind == "deny":
            assert rec["rule"] == "* /v1/files", (ctx, rec)
        return None
    if kind == "amb":
        blocked(resp, host, port, val, status=400, tag="ambiguous-target")
        assert rec_fields(rec, "verdict", "method", "host", "port", "path", "status",
                          "reason") == ("deny", "POST", host, port, spelling, 400, val), ctx
        return None
    if kind == "bad":
        # The parser refuses it before the target is known (plain HTTP), or
        # inside the tunnel whose target is fixed.
        assert resp.get("status") == 400 and header(resp, "X-Proxy-Error") == "bad-request", \
            (ctx, resp)
        if tls:
            assert resp["body"] == "cordon: %s:%d: %s\n" % (host, port, val), (ctx, resp)
            assert rec_fields(rec, "verdict", "method", "host", "port", "status", "reason") == \
                ("deny", "-", host, port, 400, val), ctx
        else:
            assert resp["body"] == "cordon: %s\n" % val, (ctx, resp)
            assert rec_fields(rec, "verdict", "method", "host", "port", "path", "status",
                              "reason") == ("deny", "-", "", 0, "", 400, val), ctx
        return None
    assert kind == "fwd"
    srv = "https" if tls else "http"
    assert resp.get("status") == 200, (ctx, resp)
    assert resp["body"] == "hello from %s POST %s\n" % (srv, val), (ctx, resp)
    assert rec_fields(rec, "verdict", "method", "host", "port", "path", "status") == \
        ("allow", "POST", host, port, val, 200), ctx
    return val


def spelling_cases(hosts=(API, WWW), rows=SPELLINGS):
    for host in hosts:
        for spelling, api_out, www_out in rows:
            out = api_out if host == API or www_out is None else www_out
            if host == WWW and spelling == "/v1/files/":
                continue
            yield host, spelling, out


def test_t11_path_spellings_are_normalised_judged_and_forwarded_as_judged(net):
    s = net.rules(SPELLING_RULES)
    cases = list(spelling_cases())
    res = net.scripts(s, *[one_plain("POST", h, p, body="x") for h, p, _ in cases])
    recs = net.audit("net.request")
    assert len(recs) == len(cases)
    forwarded = []
    for (host, spelling, out), r, rec in zip(cases, res, recs):
        fwd = check_outcome(r[-1], rec, host, 80, spelling, out)
        if fwd:
            forwarded.append("POST %s HTTP/1.1" % fwd)
    # The origin received exactly the forwarded spellings, and never
    # /v1/files in any spelling.
    assert [line for _, line in origin_lines(net)] == forwarded
    assert not [ln for ln in forwarded if ln.split()[1].split("?")[0].lower().rstrip("/") in
                ("/v1/files", "/v1/files;x")]
    # Refused targets were refused before any DNS query or dial.
    assert len(net.events(srv="http", ev="accept")) == len(forwarded)


TLS_SPELLINGS = [
    ("/v1/messages/../files", D("/v1/files"), None),
    ("/V1/FILES", D("/V1/FILES"), None),
    ("/v1/files;x", D("/v1/files;x"), None),
    ("/v1/%66iles", D("/v1/files"), None),
    ("//v1/files", A(AMB_EMPTY), None),
    ("/v1%2Ffiles", A(AMB_SLASH), None),
    ("/v1/messages/%2e%2e/files", A(AMB_DOT), None),
    ("/v1\\files", A(AMB_BSL), None),
    ("/v1/files%00", A(AMB_CTL), None),
    ("/v1/files#x", ("bad", BAD_FRAGMENT), None),
    ("/v1/./messages", F("/v1/messages"), None),
    ("/v1/%252e%252e/files", N("/v1/%252e%252e/files"), F("/v1/%252e%252e/files")),
]


def test_t11_path_spellings_inside_an_intercepted_tunnel(net):
    s = net.rules(SPELLING_RULES, tls=True)
    cases = list(spelling_cases(rows=TLS_SPELLINGS))
    res = net.scripts(s, *[one_tls("POST", h, p, body="x") for h, p, _ in cases])
    recs = net.audit("net.request")
    assert len(recs) == len(cases)
    forwarded = []
    for (host, spelling, out), r, rec in zip(cases, res, recs):
        assert r[0]["ok"], r
        fwd = check_outcome(r[-1], rec, host, 443, spelling, out, tls=True)
        if fwd:
            forwarded.append("POST %s HTTP/1.1" % fwd)
    assert [line for _, line in origin_lines(net)] == forwarded


def test_t11_normalize_mode_merges_empty_segments(net):
    """ambiguousRequestTarget "normalize": "//" is merged instead of refused;
    encoded "/", "\\", "." and control bytes, and ".." above the root, are
    still refused (pathnorm.c refuses them in every mode that normalises)."""
    s = net.rules(SPELLING_RULES, mode="normalize")
    rows = [
        ("//v1/files", D("/v1/files"), None),
        ("/v1//files", D("/v1/files"), None),
        ("//v1//messages", F("/v1/messages"), None),
        ("/v1/messages/../files", D("/v1/files"), None),
        ("/v1%2Ffiles", A(AMB_SLASH), None),
        ("/v1/messages/%2e%2e/files", A(AMB_DOT), None),
        ("/v1\\files", A(AMB_BSL), None),
        ("/v1/files%00", A(AMB_CTL), None),
        ("/..", A(AMB_ROOT), None),
        ("/v1/../../files", A(AMB_ROOT), None),
        ("//v1/./a//b/", N("/v1/a/b/"), F("/v1/a/b/")),
    ]
    cases = list(spelling_cases(rows=rows))
    res = net.scripts(s, *[one_plain("POST", h, p, body="x") for h, p, _ in cases])
    recs = net.audit("net.request")
    forwarded = []
    for (host, spelling, out), r, rec in zip(cases, res, recs):
        fwd = check_outcome(r[-1], rec, host, 80, spelling, out)
        if fwd:
            forwarded.append("POST %s HTTP/1.1" % fwd)
    assert [line for _, line in origin_lines(net)] == forwarded


def test_t11_as_spelled_mode_judges_and_forwards_the_target_byte_for_byte(net):
    """ambiguousRequestTarget "asSpelled" (srt's, documented as weaker): no
    normalisation at all, so the target is judged and forwarded exactly as
    sent. Dot segments and unreserved escapes then do slip past a deny-only
    rule (that is the documented weakness; the allow list still holds), but
    the deny patterns' case folding and ";params" stripping still apply, and
    what pathnorm.c refuses as ambiguous (encoded "/", "\\", ".", control
    bytes, overlong UTF-8) is still refused."""
    s = net.rules(SPELLING_RULES, mode="asSpelled")
    rows = [
        ("/v1/messages/../files", N("/v1/messages/../files"), F("/v1/messages/../files")),
        ("/v1/./files", N("/v1/./files"), F("/v1/./files")),
        ("//v1/files", N("//v1/files"), F("//v1/files")),
        ("/v1/%66iles", N("/v1/%66iles"), F("/v1/%66iles")),
        ("/v1/a%3fb", N("/v1/a%3fb"), F("/v1/a%3fb")),
        ("/..", N("/.."), F("/..")),
        ("/v1/./messages", N("/v1/./messages"), F("/v1/./messages")),
        ("/v1/messages", F("/v1/messages"), None),
        ("/V1/FILES", D("/V1/FILES"), None),
        ("/v1/files;x", D("/v1/files;x"), None),
        ("/v1/files?x", D("/v1/files?x"), None),
        ("/v1%2Ffiles", A(AMB_SLASH), None),
        ("/v1/messages/%2e%2e/files", A(AMB_DOT), None),
        ("/v1\\files", A(AMB_BSL), None),
        ("/v1/files%00", A(AMB_CTL), None),
        ("/v1/%c0%ae%c0%ae/files", A(AMB_UTF8), None),
    ]
    cases = list(spelling_cases(rows=rows))
    res = net.scripts(s, *[one_plain("POST", h, p, body="x") for h, p, _ in cases])
    recs = net.audit("net.request")
    forwarded = []
    for (host, spelling, out), r, rec in zip(cases, res, recs):
        fwd = check_outcome(r[-1], rec, host, 80, spelling, out)
        if fwd:
            forwarded.append("POST %s HTTP/1.1" % fwd)
    assert [line for _, line in origin_lines(net)] == forwarded


def test_t11_trailing_slash_does_not_slip_past_a_deny_only_rule(net):
    s = net.rules([{"host": WWW, "deny": ["POST /v1/files"]}])
    res = net.scripts(s, one_plain("POST", WWW, "/v1/files/", body="x"),
                      one_plain("POST", WWW, "/v1/files/.", body="x"))
    assert origin_lines(net) == []
    for r in res:
        blocked(r[-1], WWW, 80, deny_reason(0, "POST /v1/files"))


# ---------------------------------------------------------------------------
# Rule semantics: several rules, wildcards, ports, methods, unruled hosts

def test_rule_semantics_deny_wins_allow_lists_combine_hosts_ports_and_methods(net):
    rules = [
        {"host": "*.allowed.test", "allow": ["GET /v1/models", "POST /v1/**"]},
        {"host": API, "allow": ["POST /v2/messages"], "deny": ["* /v1/files", "DELETE /**"]},
        {"host": "allowed.test:443", "deny": ["* /**"]},
        {"host": WWW, "allow": ["GET /v1/%7euser/*"]},
    ]
    s = net.rules(rules, tls=True)
    cases = [
        # (scheme, method, host, path, expected: status or reason)
        ("http", "POST", API, "/v1/messages", 200),        # allow of rule 0
        ("http", "POST", API, "/v2/messages", 200),        # allow of rule 1: lists combine
        ("http", "GET", API, "/v1/models", 200),
        ("http", "POST", API, "/v1/files", deny_reason(1, "* /v1/files")),  # deny wins
        ("http", "post", API, "/v1/files", deny_reason(1, "* /v1/files")),
        ("http", "delete", API, "/v1/x", deny_reason(1, "DELETE /**")),    # deny folds case
        ("http", "post", API, "/v1/messages", no_allow_reason(0)),         # allow is exact
        ("http", "PUT", API, "/v1/messages", no_allow_reason(0)),
        ("http", "GET", API, "/v1/models/x", no_allow_reason(0)),          # "*" in a segment
        ("http", "POST", WWW, "/v1/a/b/c", 200),                           # "**" across
        ("http", "GET", WWW, "/v1/~user/x", 200),         # pattern %7e canonicalised
        ("http", "GET", WWW, "/v1/%7Euser/x", 200),
        ("http", "GET", WWW, "/v1/~user/x/y", no_allow_reason(0)),
        ("http", "POST", "allowed.test", "/v1/files/../../x", "fwd-raw"),  # no rule on :80
        ("http", "GET", "allowed.test", "/a%2Fb/./c", "fwd-raw"),
        ("https", "GET", "allowed.test", "/", deny_reason(2, "* /**")),    # the :443 rule
        ("https", "POST", API, "/v2/messages", 200),
        ("https", "POST", API, "/v1/files", deny_reason(1, "* /v1/files")),
    ]
    scripts = []
    for scheme, method, host, path, _ in cases:
        body = "b" if method.upper() in ("POST", "PUT") else None
        if scheme == "http":
            scripts.append(one_plain(method, host, path, body=body))
        else:
            scripts.append(one_tls(method, host, path, body=body))
    res = net.scripts(s, *scripts)
    expect_lines = []
    for (scheme, method, host, path, want), r in zip(cases, res):
        resp = r[-1]
        port = 80 if scheme == "http" else 443
        if want == 200 or want == "fwd-raw":
            assert resp.get("status") == 200, (method, host, path, resp)
            # A host no rule covers is forwarded as sent (not normalised):
            # real APIs use %2F in paths (GitLab's project ids).
            norm = path.replace("%7E", "~") if want == 200 else path
            assert resp["body"] == "hello from %s %s %s\n" % (scheme, method, norm), resp
            expect_lines.append("%s %s HTTP/1.1" % (method, norm))
        else:
            blocked(resp, host, port, want)
    assert [line for _, line in origin_lines(net)] == expect_lines


def test_method_override_headers_are_judged_as_the_method_they_name(net):
    """X-HTTP-Method-Override, X-HTTP-Method and X-Method-Override make
    many frameworks run a GET as the method they name: a request carrying
    one is judged for that method too (in upper case, as frameworks apply
    it), refused if either is refused; a value that is not a method is
    refused. Plain HTTP and inside an intercepted tunnel."""
    s = net.rules([{"host": API, "allow": ["GET /**"], "deny": ["DELETE /**"]}], tls=True)
    cases = [
        ("X-HTTP-Method-Override", "DELETE", deny_reason(0, "DELETE /**")),
        ("x-http-method", "delete", deny_reason(0, "DELETE /**")),
        ("X-Method-Override", "PUT", no_allow_reason(0)),
        ("X-HTTP-Method-Override", "DELETE, GET", "a method override that is not a method"),
        ("X-HTTP-Method-Override", "GET", 200),
    ]
    scripts = []
    for name, value, _ in cases:
        scripts.append(one_plain("GET", API, "/items/1", headers=[(name, value)]))
        scripts.append(one_tls("GET", API, "/items/1", headers=[(name, value)]))
    res = net.scripts(s, *scripts)
    for i, (name, value, want) in enumerate(cases):
        for r, port in zip(res[2 * i:2 * i + 2], (80, 443)):
            if want == 200:
                assert r[-1].get("status") == 200, r
                continue
            if want.startswith("a method"):
                blocked(r[-1], API, port, want)
            else:
                blocked(r[-1], API, port, "%s (%s: %s)" % (want, name, value.upper()))
    assert origin_lines(net) == [("http", "GET /items/1 HTTP/1.1"),
                                 ("https", "GET /items/1 HTTP/1.1")]
    denied = [(r["method"], r["status"], r.get("rule")) for r in net.audit("net.request")
              if r["verdict"] == "deny"]
    assert denied == [("GET", 403, "DELETE /**")] * 4 + [("GET", 403, "requestRules[0]")] * 4


def test_rules_apply_to_every_spelling_of_the_host_and_to_head(net):
    """The rule's host is matched on the canonical name (lower case, one
    trailing dot removed, default port), as allowedDomains is; a refused
    HEAD gets the refusal's head without a body."""
    s = net.rules([ANTHROPIC])
    res = net.scripts(
        s,
        *[[open_plain(), send(request("POST", "http://%s/v1/files" % h, h, body="x")), read()]
          for h in ("api.allowed.test.", "API.Allowed.TEST", "api.allowed.test:80")],
        [open_plain(), send(request("HEAD", "http://%s/v1/files" % API, API)), read(head=True)],
        [open_connect("API.allowed.test.", 443)],
        [{"do": "open", "socks": ["Api.Allowed.Test.", 443]}],
    )
    for r in res[:3]:
        blocked(r[-1], API, 80, DENY_FILES)
    blocked(res[3][-1], API, 80, DENY_FILES, head=True)
    assert res[3][-1]["body_len"] == 0
    assert res[4][0]["line"] == "HTTP/1.1 403 " + TUNNEL_REASON
    assert res[5][0]["rep"] == 2
    assert [(r["method"], r["host"], r["port"], r["path"]) for r in
            net.audit("net.request")] == [("POST", API, 80, "/v1/files")] * 3 + \
        [("HEAD", API, 80, "/v1/files")]
    assert [(r["host"], r["via"], r["reason"]) for r in net.audit("net.connect")] == \
        [(API, "connect", TUNNEL_REASON), (API, "socks", TUNNEL_REASON)]
    assert net.origin() == [] and net.dns() == []


# ---------------------------------------------------------------------------
# 5. A registry, read only

def test_registry_read_only_rule_with_curl(net):
    s = net.rules([{"host": "allowed.test", "allow": ["GET /**", "HEAD /**"]}])
    net.put("pkg.tgz", "p" * 3000)
    p = net.sh(s, """
u=http://allowed.test
curl -sS -o /dev/null -w 'GET %{http_code}\\n' $u/pkg/left-pad/-/left-pad-1.3.0.tgz
curl -sS -o /dev/null -w 'GET / %{http_code}\\n' $u/
curl -sS -I -o /dev/null -w 'HEAD %{http_code}\\n' $u/pkg/left-pad
for m in PUT POST DELETE PATCH; do
  curl -sS -X $m --data-binary @pkg.tgz -o out.txt -w "$m %{http_code}\\n" $u/pkg/left-pad
  cat out.txt
done
""")
    assert p.returncode == 0, p.stderr
    reason = no_allow_reason(0)
    body = "cordon: allowed.test:80: %s" % reason
    assert p.stdout.splitlines() == ["GET 200", "GET / 200", "HEAD 200"] + sum(
        [["%s 403" % m, body] for m in ("PUT", "POST", "DELETE", "PATCH")], [])
    assert [line for _, line in origin_lines(net)] == [
        "GET /pkg/left-pad/-/left-pad-1.3.0.tgz HTTP/1.1", "GET / HTTP/1.1",
        "HEAD /pkg/left-pad HTTP/1.1"]
    assert net.events(ev="body") == []
    denied = [r for r in net.audit("net.request") if r["verdict"] == "deny"]
    assert [(r["method"], r["path"], r["status"], r["reason"]) for r in denied] == \
        [(m, "/pkg/left-pad", 403, reason) for m in ("PUT", "POST", "DELETE", "PATCH")]


# ---------------------------------------------------------------------------
# 3. T12: smuggling never reaches the origin, plain or intercepted

SMUGGLED = ("0\r\n\r\nPOST /v1/files HTTP/1.1\r\nHost: api.allowed.test\r\n"
            "Content-Length: 1\r\n\r\nx")
SMUGGLING = [
    # name, head fields after Host (CRLF-terminated), status, reason
    ("S1 CL+TE", "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(SMUGGLED), 400,
     "both Content-Length and Transfer-Encoding (RFC 9112 6.1)"),
    ("S1 TE+CL", "Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(SMUGGLED), 400,
     "both Content-Length and Transfer-Encoding (RFC 9112 6.1)"),
    ("S2 space before colon", "Transfer-Encoding : chunked\r\n", 400,
     "whitespace between field name and colon (RFC 9112 5.1)"),
    ("S3 duplicate CL", "Content-Length: 5\r\nContent-Length: 5\r\n", 400,
     "more than one Content-Length field (RFC 9112 6.3)"),
    ("S3 CL list", "Content-Length: 5, 5\r\n", 400,
     "malformed Content-Length (RFC 9110 8.6: 1 to 19 digits)"),
    ("S4 xchunked", "Transfer-Encoding: xchunked\r\n", 501,
     'Transfer-Encoding other than a lone "chunked" (RFC 9112 6.1)'),
    ("chunked, identity", "Transfer-Encoding: chunked, identity\r\n", 501,
     'Transfer-Encoding other than a lone "chunked" (RFC 9112 6.1)'),
    ("two TE fields", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400,
     "more than one Transfer-Encoding field"),
    ("TE obs-fold", "Transfer-Encoding:\r\n chunked\r\n", 400,
     "obs-fold or leading whitespace in a field line (RFC 9112 5.2)"),
    ("bare LF", None, 400, "bare LF line ending (RFC 9112 2.2: CRLF only)"),
]


def smuggle(target, fields):
    if fields is None:
        return "POST %s HTTP/1.1\nHost: %s\nTransfer-Encoding: chunked\n\n%s" % (
            target, API, SMUGGLED)
    return "POST %s HTTP/1.1\r\nHost: %s\r\n%s\r\n%s" % (target, API, fields, SMUGGLED)


def test_t12_ambiguous_framing_is_refused_and_never_reaches_the_origin(net):
    s = net.rules([ANTHROPIC], tls=True)
    scripts = []
    for _, fields, _, _ in SMUGGLING:
        scripts.append([open_plain(), send(smuggle("http://%s/v1/messages" % API, fields)),
                        read(), rest()])
        scripts.append([open_tls(API), send(smuggle("/v1/messages", fields)), read(), rest()])
    res = net.scripts(s, *scripts)
    recs = net.audit("net.request")
    assert len(recs) == 2 * len(SMUGGLING)
    for i, (name, _, status, reason) in enumerate(SMUGGLING):
        for k, (host, port) in enumerate((("", 0), (API, 443))):
            r = res[2 * i + k]
            resp = r[2]
            assert resp.get("status") == status, (name, resp)
            assert header(resp, "X-Proxy-Error") == "bad-request", (name, resp)
            where = "%s:%d: " % (host, port) if host else ""
            assert resp["body"] == "cordon: %s%s\n" % (where, reason), (name, resp)
            # Nothing after the refusal: the smuggled request is not answered.
            assert r[3] == {"data": "", "timed_out": False}, (name, r[3])
            rec = recs[2 * i + k]
            assert rec_fields(rec, "verdict", "method", "host", "port", "status", "reason") == \
                ("deny", "-", host, port, status, reason), (name, rec)
    # No request of any kind reached either origin; plain HTTP was never dialled.
    assert net.requests() == []
    assert net.events(srv="http") == []


def test_each_request_on_a_kept_alive_or_pipelined_connection_is_judged(net):
    s = net.rules([ANTHROPIC], tls=True)
    ok = plain("POST", API, "/v1/messages", body="first")
    bad = plain("POST", API, "/v1/files", body="second")
    ok_t = request("POST", "/v1/messages", API, body="first")
    bad_t = request("POST", "/v1/files", API, body="second")
    res = net.scripts(
        s,
        [open_plain(), send(ok), read(), send(bad), read(), rest()],      # keep-alive
        [open_plain(), send(ok + bad), read(), read(), rest()],           # pipelined
        [open_tls(API), send(ok_t), read(), send(bad_t), read(), rest()],
        [open_tls(API), send(ok_t + bad_t), read(), read(), rest()],
    )
    for r, port, pipelined in zip(res, (80, 80, 443, 443), (False, True, False, True)):
        first, second = (r[2], r[3]) if pipelined else (r[2], r[4])
        assert first.get("status") == 200, r
        blocked(second, API, port, DENY_FILES)
        assert r[-1] == {"data": "", "timed_out": False}, r
    assert origin_lines(net) == [("http", "POST /v1/messages HTTP/1.1")] * 2 + \
        [("https", "POST /v1/messages HTTP/1.1")] * 2
    assert [(b["len"], b["sha256"]) for b in net.events(ev="body")] == \
        [(5, latin1_sha("first"))] * 4
    denied = [r for r in net.audit("net.request") if r["verdict"] == "deny"]
    assert [(r["port"], r["path"], r["status"], r["rule"]) for r in denied] == \
        [(p, "/v1/files", 403, "* /v1/files") for p in (80, 80, 443, 443)]


def test_malformed_request_after_an_allowed_one_names_no_rule(net):
    """A malformed request on a kept-alive connection (plain, and inside an
    intercepted tunnel) is refused with 400 and recorded without a rule:
    the rule that allowed the request before it decided nothing here."""
    s = net.rules([ANTHROPIC], tls=True)
    bad = "\r\nContent-Length: +5\r\n\r\nhello"
    ok = plain("POST", API, "/v1/messages", body="first")
    ok_t = request("POST", "/v1/messages", API, body="first")
    res = net.scripts(
        s,
        [open_plain(), send(ok), read(),
         send("POST http://%s/v1/messages HTTP/1.1\r\nHost: %s" % (API, API) + bad), read()],
        [open_tls(API), send(ok_t), read(),
         send("POST /v1/messages HTTP/1.1\r\nHost: %s" % API + bad), read()])
    for r in res:
        assert [r[2].get("status"), r[4].get("status")] == [200, 400], r
    recs = [(r["port"], r["method"], r["status"], r.get("rule")) for r in net.audit("net.request")]
    # (a malformed proxy request names no destination: port 0)
    assert recs == [(80, "POST", 200, "POST /v1/messages"), (0, "-", 400, None),
                    (443, "POST", 200, "POST /v1/messages"), (443, "-", 400, None)], recs
    assert origin_lines(net) == [("http", "POST /v1/messages HTTP/1.1"),
                                 ("https", "POST /v1/messages HTTP/1.1")]


# ---------------------------------------------------------------------------
# T13: the authority that is judged is the one that is dialled

def test_t13_absolute_uri_decides_and_routes_host_is_rewritten(net):
    s = net.rules([ANTHROPIC], tls=True)
    body = "x"
    res = net.scripts(
        s,
        # H2: the URI names an unruled host, Host names the ruled one
        [open_plain(), send(request("POST", "http://%s/v1/files" % WWW, API, body=body)),
         read()],
        # H3: the URI names the ruled host, Host an unruled one
        [open_plain(), send(request("POST", "http://%s/v1/files" % API, WWW, body=body)),
         read()],
        [open_plain(), send(request("POST", "http://evil.test/v1/messages", API, body=body)),
         read()],
        [open_plain(), send(request("POST", "http://%s/v1/messages" % API, "evil.test",
                                    body=body)), read()],
        # inside a tunnel the CONNECT target is the authority (requireHostMatch)
        [open_tls(WWW), send(request("POST", "/v1/files", API, body=body)), read()],
        [open_tls(API), send(request("POST", "/v1/messages", WWW, body=body)), read()],
        [open_tls(API), send(request("POST", "http://%s/v1/messages" % WWW, API, body=body)),
         read()],
    )
    assert res[0][-1]["status"] == 200 and \
        res[0][-1]["body"] == "hello from http POST /v1/files\n"
    blocked(res[1][-1], API, 80, DENY_FILES)
    blocked(res[2][-1], "evil.test", 80, "host is not on the allow list",
            tag="blocked-by-allowlist")
    assert res[3][-1]["status"] == 200
    mismatch = "the request names %s:443, not the CONNECT target %s:443"
    blocked(res[4][-1], WWW, 443, mismatch % (API, WWW), status=421, tag="host-mismatch")
    blocked(res[5][-1], API, 443, mismatch % (WWW, API), status=421, tag="host-mismatch")
    blocked(res[6][-1], API, 443, mismatch % (WWW, API), status=421, tag="host-mismatch")
    reqs = net.requests()
    assert [(e["srv"], e["line"], req_header(e, "Host")) for e in reqs] == [
        ("http", "POST /v1/files HTTP/1.1", WWW),
        ("http", "POST /v1/messages HTTP/1.1", API)]
    assert all(len([h for h in e["headers"] if h[0].lower() == "host"]) == 1 for e in reqs)
    assert ("evil.test", "A") not in net.dns()


def test_t13_without_require_host_match_the_tunnel_target_decides(net):
    s = net.rules([ANTHROPIC], tls=True, requireHostMatch=False)
    res = net.scripts(
        s,
        [open_tls(API), send(request("POST", "/v1/files", WWW, body="x")), read()],
        [open_tls(WWW), send(request("POST", "/v1/files", API, body="x")), read()],
    )
    blocked(res[0][-1], API, 443, DENY_FILES)
    assert res[1][-1]["status"] == 200
    [e] = net.requests()
    assert (e["srv"], e["line"], req_header(e, "Host")) == \
        ("https", "POST /v1/files HTTP/1.1", WWW)


# ---------------------------------------------------------------------------
# T16: redirects are the client's to follow, and judged afresh

def test_t16_redirects_are_not_followed_and_curl_l_is_judged_fresh(net):
    rules = [{"host": API, "allow": ["GET /redirect", "POST /v1/messages"],
              "deny": ["* /v1/files"]}]
    s = net.rules(rules, tls=True)
    fmt = "\\n%{http_code} %{num_redirects} %{url_effective}\\n"
    p = net.sh(s, """
for s in http https; do
  curl -sS -L -w '%(f)s' "$s://%(a)s/redirect?to=$s://%(a)s/v1/files"
  curl -sS -L -w '%(f)s' "$s://%(a)s/redirect?to=http://evil.test/"
  curl -sS -L -w '%(f)s' "$s://%(a)s/redirect-to-evil"
done
""" % {"f": fmt, "a": API})
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n")
    for scheme, port in (("http", 80), ("https", 443)):
        want = [
            "cordon: %s:%d: %s" % (API, port, DENY_FILES), "",
            "403 1 %s://%s/v1/files" % (scheme, API),
            "cordon: evil.test:80: host is not on the allow list", "",
            "403 1 http://evil.test/",
            # /redirect-to-evil is not on the allow list of this rule
            "cordon: %s:%d: %s" % (API, port, NO_ALLOW), "",
            "403 0 %s://%s/redirect-to-evil" % (scheme, API),
        ]
        assert out[:9] == want, p.stdout
        out = out[9:]
    # The origin answered the two redirects per scheme and nothing else.
    assert [(e["srv"], e["line"]) for e in net.requests()] == [
        (srv, "GET /redirect?to=%s HTTP/1.1" % to) for srv, to in (
            ("http", "http://%s/v1/files" % API), ("http", "http://evil.test/"),
            ("https", "https://%s/v1/files" % API), ("https", "http://evil.test/"))]
    reqs = net.audit("net.request")
    assert [(r["verdict"], r["method"], r["port"], r["path"], r["status"]) for r in reqs] == [
        ("allow", "GET", 80, "/redirect?to=http://%s/v1/files" % API, 302),
        ("deny", "GET", 80, "/v1/files", 403),
        ("allow", "GET", 80, "/redirect?to=http://evil.test/", 302),
        ("deny", "GET", 80, "/redirect-to-evil", 403),
        ("allow", "GET", 443, "/redirect?to=https://%s/v1/files" % API, 302),
        ("deny", "GET", 443, "/v1/files", 403),
        ("allow", "GET", 443, "/redirect?to=http://evil.test/", 302),
        ("deny", "GET", 443, "/redirect-to-evil", 403),
    ]
    assert len(find(net.audit("net.connect"), host="evil.test", verdict="deny")) == 2
    assert ("evil.test", "A") not in net.dns()


# ---------------------------------------------------------------------------
# T17: an Upgrade handshake is a request like any other

def upgrade(target, host=API):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (target, host))


def test_t17_websocket_upgrade_is_judged_like_any_request(net):
    rules = [{"host": API, "allow": ["POST /v1/messages", "GET /ws/**"],
              "deny": ["* /v1/files"]}]
    s = net.rules(rules, tls=True)
    msg = "frame-bytes-" * 10
    res = net.scripts(
        s,
        [open_plain(), send(upgrade("http://%s/v1/files" % API)), read()],
        [open_plain(), send(upgrade("http://%s/ws/../v1/files" % API)), read()],
        # after the 101: echo, then a half-close the origin sees (and logs)
        # before the tunnel ends
        [open_plain(), send(upgrade("http://%s/ws/chat" % API)), read(), send(msg),
         {"do": "recv", "c": "a", "n": len(msg)}, {"do": "shutdown", "c": "a"}, rest()],
        [open_tls(API), send(upgrade("/v1/files")), read()],
        [open_tls(API), send(upgrade("/ws/chat")), read(), send(msg),
         {"do": "recv", "c": "a", "n": len(msg)}],
    )
    blocked(res[0][-1], API, 80, DENY_FILES)
    blocked(res[1][-1], API, 80, DENY_FILES)
    blocked(res[3][-1], API, 443, DENY_FILES)
    for r, srv in ((res[2], "http"), (res[4], "https")):
        assert r[2]["status"] == 101 and header(r[2], "Upgrade") == "websocket", r
        assert header(r[2], "X-Origin") == srv
        assert r[4] == {"data": msg}, r
    assert res[2][6] == {"data": "", "timed_out": False}, res[2]
    reqs = net.requests()
    assert [(e["srv"], e["line"]) for e in reqs] == [("http", "GET /ws/chat HTTP/1.1"),
                                                      ("https", "GET /ws/chat HTTP/1.1")]
    for e in reqs:
        assert req_header(e, "Upgrade") == "websocket"
        assert req_header(e, "Connection").lower() == "upgrade"
    # (the TLS one is logged when the origin sees the tunnel end)
    assert [(u["srv"], u["bytes"]) for u in net.wait_events("upgraded", 2)] == \
        [("http", len(msg)), ("https", len(msg))]
    recs = net.audit("net.request")
    assert [(r["verdict"], r["port"], r["path"], r["status"], r.get("rule")) for r in recs] == [
        ("deny", 80, "/v1/files", 403, "* /v1/files"),
        ("deny", 80, "/v1/files", 403, "* /v1/files"),
        ("allow", 80, "/ws/chat", 101, "GET /ws/**"),
        ("deny", 443, "/v1/files", 403, "* /v1/files"),
        ("allow", 443, "/ws/chat", 101, "GET /ws/**"),
    ]


def test_t17_bytes_after_an_upgrade_are_capped_by_max_session_bytes(net):
    rules = [{"host": API, "allow": ["GET /ws/**"], "maxSessionBytes": 5000}]
    s = net.rules(rules)
    net.script(s, [open_plain(), send(upgrade("http://%s/ws/chat" % API)), read(),
                   send("z" * 20000), {"do": "shutdown", "c": "a"}, rest(timeout=5)])
    [up] = net.events(ev="upgraded")
    assert up["bytes"] <= 5000, up


# ---------------------------------------------------------------------------
# T27: body limits

def test_t27_max_request_bytes_with_content_length_plain_and_https(net):
    rules = [{"host": API, "allow": ["POST /v1/messages"], "maxRequestBytes": 1000}]
    s = net.rules(rules, tls=True)
    b1000, b1001 = body_bytes(1000), body_bytes(1001)
    expect_head = ("POST http://%s/v1/messages HTTP/1.1\r\nHost: %s\r\nContent-Length: 5000\r\n"
                   "Expect: 100-continue\r\n\r\n" % (API, API))
    res = net.scripts(
        s,
        one_plain("POST", API, "/v1/messages", body=b1000),
        one_plain("POST", API, "/v1/messages", body=b1001),
        # With Expect: 100-continue the refusal comes before the body is sent.
        [open_plain(), send(expect_head), read()],
        one_tls("POST", API, "/v1/messages", body=b1000),
        one_tls("POST", API, "/v1/messages", body=b1001),
    )
    assert res[0][-1]["status"] == 200 and res[3][-1]["status"] == 200
    for r, port in ((res[1], 80), (res[2], 80), (res[4], 443)):
        blocked(r[-1], API, port, TOO_LARGE_REASON, status=413, tag="too-large")
        assert r[-1]["interim"] == []
    assert [(e["srv"], e["line"]) for e in net.requests()] == \
        [("http", "POST /v1/messages HTTP/1.1"), ("https", "POST /v1/messages HTTP/1.1")]
    assert [(b["srv"], b["len"], b["sha256"]) for b in net.events(ev="body")] == \
        [(srv, 1000, latin1_sha(b1000)) for srv in ("http", "https")]
    assert len(net.events(srv="http", ev="accept")) == 1
    recs = net.audit("net.request")
    assert [(r["verdict"], r["port"], r["path"], r["status"], r["rule"], r.get("reason"))
            for r in recs] == [
        ("allow", 80, "/v1/messages", 200, "POST /v1/messages", None),
        ("deny", 80, "/v1/messages", 413, "POST /v1/messages", TOO_LARGE_REASON),
        ("deny", 80, "/v1/messages", 413, "POST /v1/messages", TOO_LARGE_REASON),
        ("allow", 443, "/v1/messages", 200, "POST /v1/messages", None),
        ("deny", 443, "/v1/messages", 413, "POST /v1/messages", TOO_LARGE_REASON),
    ]


def test_t27_curl_upload_over_the_limit_gets_413(net):
    """curl announces a 2 MiB upload with "Expect: 100-continue" and gets
    the 413 before it sends the body. (A smaller upload over the limit races
    the lingering close.)"""
    rules = [{"host": API, "allow": ["POST /v1/messages"], "maxRequestBytes": 1000}]
    s = net.rules(rules, tls=True)
    net.put("small.bin", "s" * 900)
    net.put("big.bin", "b" * (2 << 20))
    p = net.sh(s, """
for s in http https; do
  for f in small big; do
    curl -sS -o out.txt -w "$s $f %%{http_code}\\n" --data-binary @$f.bin $s://%s/v1/messages
    cat out.txt; echo
  done
done
""" % API)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines == [
        "http small 200", "hello from http POST /v1/messages", "",
        "http big 413", "cordon: %s:80: %s" % (API, TOO_LARGE_REASON), "",
        "https small 200", "hello from https POST /v1/messages", "",
        "https big 413", "cordon: %s:443: %s" % (API, TOO_LARGE_REASON), "",
    ]
    assert [(b["srv"], b["len"]) for b in net.events(ev="body")] == [("http", 900),
                                                                      ("https", 900)]


CHUNKED_HEAD = "POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(n, ch="a"):
    return "%x\r\n%s\r\n" % (n, ch * n)


def test_t27_chunked_body_that_outgrows_the_limit_is_cut(net):
    """A chunked body has no size up front: cordon forwards it until the
    next read would pass the limit, then drops the upstream connection (the
    origin sees a body cut short, never a complete request) and answers the
    client 413. Sent all at once, nothing of the body is forwarded."""
    rules = [{"host": API, "allow": ["POST /v1/messages"], "maxRequestBytes": 1000}]
    s = net.rules(rules, tls=True)

    def slow(first, head):
        return [first, send(head), sleep(0.1), send(chunk(400)), sleep(0.1),
                send(chunk(400)), sleep(0.1), send(chunk(400)), sleep(0.1),
                send(chunk(400) + "0\r\n\r\n"), read(), rest()]

    res = net.scripts(
        s,
        slow(open_plain(), CHUNKED_HEAD % ("http://%s/v1/messages" % API, API)),
        slow(open_tls(API), CHUNKED_HEAD % ("/v1/messages", API)),
        [open_plain(), send(plain("POST", API, "/v1/messages", body="q" * 1500,
                                  te_chunked=500)), read(), rest()],
    )
    for r, port in ((res[0], 80), (res[1], 443), (res[2], 80)):
        blocked(r[-2], API, port, GREW_BODY, status=413, tag="too-large")
        assert r[-1] == {"data": "", "timed_out": False}, r
    # The origin: the slow bodies cut short after whole chunks and never
    # past the limit, and no complete request at all. (The body sent in one
    # piece is cut before anything of it is forwarded: as a rule not even
    # its head reaches the origin, which depends on how the bytes arrived,
    # so only "no complete request" is asserted for it.)
    lines = [(e["srv"], e["line"]) for e in net.requests()]
    assert lines[:2] == [("http", "POST /v1/messages HTTP/1.1"),
                         ("https", "POST /v1/messages HTTP/1.1")], lines
    assert lines[2:] in ([], [("http", "POST /v1/messages HTTP/1.1")]), lines
    bad = net.wait_events("bad", 2)
    assert [b["srv"] for b in bad[:2]] == ["http", "https"], bad
    for b in bad[:2]:
        assert b["error"] == "EOF in chunked body", b
        assert b["got"] in (400, 800), b       # whole chunks, never past the limit
    for b in bad[2:]:
        assert b["got"] in (0, 500), b
    assert net.events(ev="body") == []
    recs = net.audit("net.request")
    assert [(r["verdict"], r["port"], r["path"], r["status"], r["rule"], r["reason"])
            for r in recs] == [
        ("deny", p, "/v1/messages", 413, "POST /v1/messages", GREW_REASON)
        for p in (80, 443, 80)]


def test_t27_refusal_with_the_body_still_coming_is_a_lingering_close(net):
    rules = [{"host": API, "allow": ["POST /v1/messages"], "maxRequestBytes": 1000}]
    s = net.rules(rules)
    head = "POST http://%s/v1/messages HTTP/1.1\r\nHost: %s\r\nContent-Length: 300000\r\n\r\n" \
        % (API, API)
    r = net.script(s, [open_plain(), send(head), send("u" * 1000, times=150), sleep(0.3),
                       send("u" * 1000), read()])
    # cordon read the head and at most 64 KiB, answered 413, and must still
    # be draining (not have reset the connection) when more body arrives.
    assert r[4] == {"ok": True}, r[4]
    blocked(r[5], API, 80, TOO_LARGE_REASON, status=413, tag="too-large")


def test_t27_chunked_body_of_exactly_the_limit_is_forwarded(net):
    rules = [{"host": API, "allow": ["POST /v1/messages"], "maxRequestBytes": 1000}]
    s = net.rules(rules)
    body = body_bytes(1000)
    r = net.script(s, [open_plain(), send(plain("POST", API, "/v1/messages", body=body,
                                                te_chunked=400)), read()])
    assert r[-1]["status"] == 200, r[-1]
    assert [(b["len"], b["sha256"]) for b in net.events(ev="body")] == \
        [(1000, latin1_sha(body))]


def test_t27_a_cut_body_still_records_net_close(net):
    rules = [{"host": API, "allow": ["POST /v1/messages"], "maxRequestBytes": 1000}]
    s = net.rules(rules)
    net.script(s, [open_plain(), send(CHUNKED_HEAD % ("http://%s/v1/messages" % API, API)),
                   sleep(0.1), send(chunk(400)), sleep(0.1), send(chunk(800)), read()])
    [conn] = net.audit("net.connect")
    assert conn["verdict"] == "allow"
    [close] = net.audit("net.close")
    assert (close["host"], close["port"], close["address"]) == (API, 80, PUBLIC4)
    assert close["bytes_up"] in (400, len(chunk(400))), close


def test_t27_max_session_bytes_adds_up_over_the_run(net):
    rules = [{"host": "*.allowed.test", "allow": ["POST /up", "GET /**"],
              "maxSessionBytes": 5000}]
    s = net.rules(rules, tls=True)

    def up(n, host=API):
        return one_plain("POST", host, "/up", body=body_bytes(n))

    res = net.scripts(
        s,
        up(2000),                                   # 2000 used
        one_tls("POST", WWW, "/up", body=body_bytes(2000)),  # 4000: one budget per rule
        up(2000),                                   # would be 6000: 413 up front
        up(1000, WWW),                              # exactly 5000
        up(1),                                      # 413
        one_plain("GET", API, "/still-fine"),       # no body: still allowed
    )
    st = [r[-1].get("status") for r in res]
    assert st == [200, 200, 413, 200, 413, 200], res
    for i, port in ((2, 80), (4, 80)):
        blocked(res[i][-1], API, port, TOO_LARGE_REASON, status=413, tag="too-large")
    assert [(b["srv"], b["len"]) for b in net.events(ev="body")] == \
        [("http", 2000), ("https", 2000), ("http", 1000)]
    recs = net.audit("net.request")
    assert [(r["verdict"], r["host"], r["status"]) for r in recs] == [
        ("allow", API, 200), ("allow", WWW, 200), ("deny", API, 413), ("allow", WWW, 200),
        ("deny", API, 413), ("allow", API, 200)]

    # A new run starts with a new budget.
    net.reset()
    r = net.script(s, up(2000))
    assert r[-1]["status"] == 200


def test_t27_concurrent_requests_share_one_session_budget(net):
    rules = [{"host": API, "allow": ["POST /v1/messages"], "maxSessionBytes": 1000}]
    s = net.rules(rules)
    head = "POST http://%s/v1/messages HTTP/1.1\r\nHost: %s\r\nContent-Length: 800\r\n\r\n" % (
        API, API)
    res = net.script(s, [open_plain("a"), open_plain("b"), send(head, "a"), send(head, "b"),
                         sleep(0.2), send("a" * 800, "a"), send("b" * 800, "b"),
                         read("a"), read("b")])
    assert sorted(r.get("status") for r in res[-2:]) == [200, 413], res[-2:]
    assert sum(b["len"] for b in net.events(ev="body")) <= 1000


# ---------------------------------------------------------------------------
# 4. A GitHub-style rule on the lab's git smart-HTTP server

GITHUB = {"host": "allowed.test",
          "allow": ["GET /**/info/refs", "POST /**/git-upload-pack"],
          "deny": ["* /**/git-receive-pack"]}


def test_github_rule_lets_git_clone_and_fetch_through_and_stops_push(net):
    s = net.rules([GITHUB], tls=True)
    branch = "rr-%d-%s" % (net.sb.uid, os.urandom(4).hex())
    p = net.sh(s, """
for s in http https; do
  git clone -q $s://allowed.test/git/repo.git clone-$s || echo "clone $s failed"
  git -C clone-$s rev-parse HEAD
  git clone -q $s://allowed.test/git/push.git push-$s || echo "clone push $s failed"
  cd push-$s
  git -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m x
  git push -q origin HEAD:refs/heads/%s 2>err.txt; echo "push $s rc=$?"
  grep -c 'HTTP 403' err.txt
  git fetch -q origin && echo "fetch $s ok"
  cd ..
done
""" % branch)
    assert p.returncode == 0, p.stderr
    head = net.lab.git_head
    assert p.stdout.splitlines() == sum(
        [[head, "push %s rc=1" % s, "1", "fetch %s ok" % s] for s in ("http", "https")], [])
    reqs = [(e["srv"], e["line"].split()[0], e["line"].split()[1]) for e in net.requests()]
    # Fetch and clone reached the origin; push got as far as the ref
    # advertisement (only the path is matched, so "GET /**/info/refs"
    # allows ?service=git-receive-pack) and never posted a pack.
    assert not [r for r in reqs if "git-receive-pack" in r[2] and r[1] == "POST"], reqs
    for srv in ("http", "https"):
        mine = [(m, t) for sv, m, t in reqs if sv == srv]
        assert ("GET", "/git/repo.git/info/refs?service=git-upload-pack") in mine
        assert ("POST", "/git/repo.git/git-upload-pack") in mine
        assert ("GET", "/git/push.git/info/refs?service=git-receive-pack") in mine
    denied = [r for r in net.audit("net.request") if r["verdict"] == "deny"]
    reason = deny_reason(0, "* /**/git-receive-pack")
    assert [(r["method"], r["port"], r["path"], r["status"], r["rule"], r["reason"])
            for r in denied] == [("POST", port, "/git/push.git/git-receive-pack", 403,
                                  "* /**/git-receive-pack", reason) for port in (80, 443)]
    allowed = [r for r in net.audit("net.request") if r["verdict"] == "allow"]
    assert {r["rule"] for r in allowed} == {"GET /**/info/refs", "POST /**/git-upload-pack"}


def test_git_push_works_without_the_rule_so_the_rule_is_what_stops_it(net):
    s = net.rules([{"host": "allowed.test",
                    "allow": ["GET /**/info/refs", "POST /**/git-upload-pack",
                              "POST /**/git-receive-pack"]}])
    branch = "rr-%d-%s" % (net.sb.uid, os.urandom(4).hex())
    p = net.sh(s, """
git clone -q http://allowed.test/git/push.git p && cd p &&
git -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m x &&
git push -q origin HEAD:refs/heads/%s && echo pushed
""" % branch)
    assert p.returncode == 0 and p.stdout.strip() == "pushed", (p.stdout, p.stderr)
    assert ("http", "POST /git/push.git/git-receive-pack HTTP/1.1") in origin_lines(net)


# ---------------------------------------------------------------------------
# 6. Tunnels to a ruled host must be intercepted

def test_opaque_connect_and_socks_to_a_ruled_host_are_refused(net):
    s = net.rules([ANTHROPIC])                     # no tlsTerminate
    s_ex = net.rules([ANTHROPIC], tls={"excludeDomains": [API]})
    probe = [
        {"op": "script", "steps": [open_connect(API, 443)]},
        {"op": "script", "steps": [{"do": "open", "socks": [API, 443]}]},
        {"op": "script", "steps": [open_connect(WWW, 443)]},    # unruled: a tunnel
    ]
    for settings in (s, s_ex):
        net.reset()
        res = net.probe(settings, probe)
        c = res[0][0]
        assert c["ok"] is False and c["line"] == "HTTP/1.1 403 " + TUNNEL_REASON, c
        assert header(c, "X-Proxy-Error") == "blocked-by-rule"
        assert c["body"] == "cordon: %s:443: %s\n" % (API, TUNNEL_REASON)
        assert c["closed_after"] is True
        sk = res[1][0]
        assert (sk["ok"], sk["rep"], sk["closed_after"]) == (False, 2, True), sk
        assert res[2][0]["ok"] is True and res[2][0]["status"] == 200
        deny = [r for r in net.audit("net.connect") if r["verdict"] == "deny"]
        assert [(r["host"], r["port"], r["via"], r["rule"], r["reason"]) for r in deny] == [
            (API, 443, "connect", "*.allowed.test", TUNNEL_REASON),
            (API, 443, "socks", "*.allowed.test", TUNNEL_REASON)]
        assert "address" not in deny[0] and "address" not in deny[1]
        # Refused before resolving or dialling.
        assert ("api.allowed.test", "A") not in net.dns()
        assert [a["local"] for a in net.events(srv="https", ev="accept")] == [PUBLIC4]


def test_plain_http_inside_a_connect_to_a_ruled_host_is_judged(net):
    s = net.rules([ANTHROPIC], tls=True)
    res = net.scripts(
        s,
        [open_connect(API, 80), send(request("POST", "/v1/files", API, body="x")), read()],
        [open_connect(API, 80), send(request("POST", "/v1/messages", API, body="x")), read()],
    )
    blocked(res[0][-1], API, 80, DENY_FILES)
    assert res[1][-1]["status"] == 200
    assert origin_lines(net) == [("http", "POST /v1/messages HTTP/1.1")]


def test_socks_tunnel_to_a_ruled_host_is_intercepted_and_judged(net):
    s = net.rules([ANTHROPIC], tls=True)
    res = net.scripts(
        s,
        [open_tls(API, socks=True), send(request("POST", "/v1/messages", API, body="x")),
         read()],
        [open_tls(API, socks=True), send(request("POST", "/v1/files", API, body="x")),
         read()],
    )
    assert res[0][0]["ok"] and res[0][-1].get("status") == 200, res[0]
    blocked(res[1][-1], API, 443, DENY_FILES)
    assert origin_lines(net) == [("https", "POST /v1/messages HTTP/1.1")]


def test_asterisk_form_is_refused_on_a_ruled_host_only(net):
    s = net.rules([ANTHROPIC], tls=True)
    res = net.scripts(
        s,
        [open_tls(API), send("OPTIONS * HTTP/1.1\r\nHost: %s\r\n\r\n" % API), read()],
        [open_tls("allowed.test"), send("OPTIONS * HTTP/1.1\r\nHost: allowed.test\r\n\r\n"),
         read()],
        # through the plain proxy asterisk-form cannot be said: OPTIONS to
        # the authority is judged as "/"
        [open_plain(), send("OPTIONS http://%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (API, API)),
         read()],
    )
    blocked(res[0][-1], API, 443,
            "asterisk-form requests are refused on a host with request rules")
    assert res[1][-1]["status"] == 200
    blocked(res[2][-1], API, 80, NO_ALLOW)
    assert origin_lines(net) == [("https", "OPTIONS * HTTP/1.1")]
    recs = net.audit("net.request")
    assert rec_fields(recs[0], "verdict", "method", "host", "port", "path", "status",
                      "reason") == ("deny", "OPTIONS", API, 443, "*", 403,
                                    "OPTIONS * on a host with request rules")
    assert rec_fields(recs[2], "verdict", "method", "path", "status") == \
        ("deny", "OPTIONS", "/", 403)


# ---------------------------------------------------------------------------
# 7. Settings errors

SETTINGS_ERRORS = [
    ({"host": API, "allow": ["POST"]}, "/network/requestRules/0/allow/0",
     '"POST": expected "METHOD /path" with one space, e.g. "POST /v1/messages"'),
    ({"host": API, "allow": ["POST /v1/messages", "POST v1/files"]},
     "/network/requestRules/0/allow/1",
     '"POST v1/files": the path pattern must start with "/"'),
    ({"host": API, "deny": ["GET /**/info/refs?service=git-receive-pack"]},
     "/network/requestRules/0/deny/0",
     '"GET /**/info/refs?service=git-receive-pack": the path pattern holds a space, '
     'control, non-ASCII, "?" or "#" byte'),
    ({"host": API, "deny": ["GET  /x"]}, "/network/requestRules/0/deny/0",
     '"GET  /x": expected "METHOD /path" with one space, e.g. "POST /v1/messages"'),
    ({"host": API, "deny": ["G(T /x"]}, "/network/requestRules/0/deny/0",
     '"G(T /x": the method must be a token (GET, POST, ...) or "*"'),
    ({"host": API, "deny": ["GET /a/../b"]}, "/network/requestRules/0/deny/0",
     '"GET /a/../b": the path pattern holds a "." or ".." segment'),
    ({"host": API, "deny": ["GET /a%2Fb"]}, "/network/requestRules/0/deny/0",
     '"GET /a%2Fb": an encoded "/" or "\\" in the path'),
    ({"host": API, "deny": [5]}, "/network/requestRules/0/deny/0",
     "expected a string, got an integer"),
    ({"host": API, "deny": "GET /x"}, "/network/requestRules/0/deny",
     'expected an array of "METHOD /path" patterns, got a string'),
    ({"host": "*", "deny": ["GET /x"]}, "/network/requestRules/0/host",
     '"*": "*" is only allowed in deniedDomains'),
    ({"deny": ["GET /x"]}, "/network/requestRules/0", 'a rule needs "host"'),
    ({"host": API, "denny": ["GET /x"]}, "/network/requestRules/0/denny",
     "unknown key in a request rule (expected host, allow, deny, maxRequestBytes, "
     "maxSessionBytes)"),
    ({"host": API, "maxRequestBytes": 0}, "/network/requestRules/0/maxRequestBytes",
     "expected a positive number of bytes, got 0"),
    ({"host": API, "maxSessionBytes": "100"}, "/network/requestRules/0/maxSessionBytes",
     "expected a positive number of bytes, got a string"),
]


def test_settings_errors_name_file_pointer_and_problem_and_nothing_runs(sb):
    cases = [({"requestRules": [rule]}, ptr, msg) for rule, ptr, msg in SETTINGS_ERRORS]
    cases += [({"requestRules": {"host": API}}, "/network/requestRules",
               "expected an array of rules, got an object"),
              ({"ambiguousRequestTarget": "lenient"}, "/network/ambiguousRequestTarget",
               'expected "refuse", "normalize" or "asSpelled"')]
    # An external proxy would do the filtering: a rule could not be enforced.
    for key in ("httpProxyPort", "socksProxyPort"):
        cases.append(({"requestRules": [ANTHROPIC], key: 8080}, "/network",
                      "requestRules cannot be enforced when httpProxyPort or socksProxyPort "
                      "hands the filtering to an external proxy"))
    marker = os.path.join(sb.ws, "ran")
    for i, (net, ptr, msg) in enumerate(cases):
        path = sb.settings({"network": net}, name="bad-rules-%d.json" % i)
        p = sb.run("-s", path, "--", "/bin/sh", "-c", "echo RAN; touch ran")
        assert p.returncode == 125, (net, p.returncode, p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.strip().splitlines() == ["cordon: %s: %s: %s" % (path, ptr, msg)], \
            (net, p.stderr)
        assert not os.path.exists(marker)
    # The good version of the same file runs.
    ok = sb.settings({"network": {"requestRules": [ANTHROPIC], "allowedDomains": [API]}},
                     name="good-rules.json")
    p = sb.run("-s", ok, "--", "/bin/echo", "RAN")
    assert (p.returncode, p.stdout) == (0, "RAN\n"), p.stderr
