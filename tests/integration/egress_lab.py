"""A private network for the egress tests: servers and the cordon runs that
talk to them live in a network namespace the test makes itself.

Why a namespace of our own: some cases must dial an address the policy lets
through on purpose (a private address with allowPrivateAddresses), and a
broken guard would dial metadata or private addresses. In the test's own
namespace nothing has a route off the machine: such a connect fails with
ENETUNREACH and no packet leaves. The namespace has only `lo`, plus

  - a local route for 198.51.100.0/24 and 2001:db8::/64 (TEST-NET-2 and the
    documentation prefix): every address in them is this namespace's own
    loopback in effect, yet none is an interface address, so the proxy's
    guard sees an ordinary public-looking address. "allowed.test" resolves
    to 198.51.100.10: the normal path (allowed name, ordinary address, dial)
    needs no exemption;
  - 198.51.100.7/32 on lo: an address of "this host" (the proxy must refuse
    a name that resolves to it).

The servers bind the wildcard address, so one listener serves 127.0.0.1,
198.51.100.x and ::1 alike, and each log line says which local address and
port the connection came in on (that is how a test tells "the proxy dialled
127.0.0.1" from "it dialled 198.51.100.10").

Run as a script (`python3 egress_lab.py serve STATEDIR`) it is the server
process inside the namespace (started with `unshare --net`, hence root);
imported, it is the test side: Lab starts that process, checks the namespace
really is a new one with no route out (and refuses to run anything
otherwise), runs cordon inside it with nsenter (then setpriv for uid 65534),
and reads the servers' log. Missing Debian tools (openssl, sshd) are
installed with apt-get when running as root.

Servers (ports in STATEDIR/ports.json):
  http   HTTP/1.1 origin on 80 and a random port: keep-alive, pipelining,
         chunked and Content-Length request bodies, Expect: 100-continue,
         HEAD, /size/N and /chunked/N (deterministic bytes with their sha256
         in X-Body-Sha256), /echo (sha256 of the request body), /host (the
         Host field received), /bye (answers, then closes), /eof (a body
         that ends at close), /204, /bad-response (bare LF line ends),
         /git/... (git http-backend as CGI; repo.git for fetches,
         push.git also accepts pushes), /redirect-to-evil (302 to
         http://evil.test/), /redirect?to=URL (302 to URL, percent-decoded),
         /ws... with "Connection: upgrade" and "Upgrade: websocket" (101,
         then echoes bytes until EOF and logs "upgraded" with their count).
         A body cut short is logged as "bad" with "got", the body bytes
         that did arrive
  https  the same behind TLS (a leaf for allowed.test, *.allowed.test and
         127.0.0.1 signed by a CA made at start) on 443 and a random port
  echo   raw TCP echo on a random port and on 22 (a trap: nothing may arrive)
  dns    UDP DNS on 127.0.0.1:random: A/AAAA from a table, NXDOMAIN for
         anything else, NODATA for a known name without that type
  ssh    a private sshd on a random port (only when openssh-server exists)
Every accepted connection, request head, request body and DNS query is one
JSON line in STATEDIR/log.jsonl.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))

PUBLIC4 = "198.51.100.10"     # where allowed names point: an ordinary address
PUBLIC6 = "2001:db8::10"
OWN4 = "198.51.100.7"         # an address of the proxy's own host

# The DNS server's table. Anything not here is NXDOMAIN.
DNS_TABLE = {
    "allowed.test": {"A": [PUBLIC4]},
    "www.allowed.test": {"A": [PUBLIC4]},
    "api.allowed.test": {"A": [PUBLIC4]},
    "v6.allowed.test": {"AAAA": [PUBLIC6]},
    "metadata.allowed.test": {"A": ["169.254.169.254"]},
    "internal.allowed.test": {"A": ["10.1.2.3"]},
    "loop.test": {"A": ["127.0.0.1"]},
    "meta.test": {"A": ["169.254.169.254"]},
    "private.test": {"A": ["10.1.2.3"]},
    "cgnat.test": {"A": ["100.64.1.2"]},
    "mapped.test": {"AAAA": ["::ffff:169.254.169.254"]},
    "nat64.test": {"AAAA": ["64:ff9b::a9fe:a9fe"]},
    "ula.test": {"AAAA": ["fd12:3456::1"]},
    "ec2v6.test": {"AAAA": ["fd00:ec2::254"]},
    "own.test": {"A": [OWN4]},
    "sixtofour.test": {"AAAA": ["2002:a9fe:a9fe::1"]},
    "teredo.test": {"AAAA": ["2001:0:102:304::5601:5601"]},
    "linklocal6.test": {"AAAA": ["fe80::1"]},
    "loop6.test": {"AAAA": ["::1"]},
    "mcast.test": {"A": ["224.0.0.1"]},
    "zero.test": {"A": ["0.0.0.0"]},
    "bcast.test": {"A": ["255.255.255.255"]},
    "ecs.test": {"A": ["169.254.170.2"]},
    "alibaba.test": {"A": ["100.100.100.200"]},
    "linklocal.test": {"A": ["169.254.1.1"]},
    "rfc1918b.test": {"A": ["172.16.5.4"]},
    "rfc1918c.test": {"A": ["192.168.1.1"]},
    "mixed.test": {"A": ["127.0.0.1", PUBLIC4]},
    # Names a correct proxy refuses before resolving: if one of them were
    # resolved by mistake, it would point at a live origin.
    "evil.test": {"A": [PUBLIC4]},
    "evilallowed.test": {"A": [PUBLIC4]},
    "allowed.test.evil.test": {"A": [PUBLIC4]},
    "xn--llowed-2nf.test": {"A": [PUBLIC4]},
}


# ---------------------------------------------------------------------------
# helpers shared by both sides

def det_bytes(n):
    """n deterministic pseudo-random bytes (the same inside the sandbox)."""
    return random.Random(n).randbytes(n)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------
# server side (runs inside the namespace as root)

class Log:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, **rec):
        rec["mono"] = time.monotonic()
        line = (json.dumps(rec, sort_keys=True) + "\n").encode()
        with self.lock:
            os.write(self.fd, line)


def addr_text(sa):
    return sa[0]


def listen(family, port, host=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
    s.listen(128)
    return s


def listen_pair(port=0):
    """IPv4 and IPv6 wildcard listeners on the same port (random when 0)."""
    for _ in range(50):
        s4 = listen(socket.AF_INET, port)
        p = s4.getsockname()[1]
        try:
            s6 = listen(socket.AF_INET6, p)
        except OSError:
            s4.close()
            if port:
                raise
            continue
        return p, [s4, s6]
    raise RuntimeError("no free port pair")


def serve_forever(socks, handler):
    def loop(s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    for s in socks:
        threading.Thread(target=loop, args=(s,), daemon=True).start()


class HeadError(Exception):
    def __init__(self, msg, got=None):
        super().__init__(msg)
        self.got = got  # body bytes received before a body was cut short


def read_head(rf):
    """Raw lines of one message head (without line ends), or None at EOF."""
    lines = []
    while True:
        line = rf.readline(65536)
        if not line:
            if lines:
                raise HeadError("EOF inside a head")
            return None
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue  # tolerate a stray empty line between messages
            return lines
        lines.append(line.rstrip(b"\r\n"))


def read_body(rf, hd):
    te = hd.get("transfer-encoding", "").lower()
    if te:
        if te != "chunked":
            raise HeadError("unsupported transfer-encoding " + te)
        out = []
        while True:
            size_line = rf.readline(1024)
            if not size_line:
                raise HeadError("EOF in chunked body", got=sum(map(len, out)))
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers
                    t = rf.readline(65536)
                    if t in (b"\r\n", b"\n", b""):
                        break
                return b"".join(out), "chunked"
            data = rf.read(size)
            if len(data) != size:
                raise HeadError("EOF in chunk", got=sum(map(len, out)) + len(data))
            out.append(data)
            rf.readline(16)
    cl = hd.get("content-length")
    if cl is not None:
        n = int(cl)
        data = rf.read(n) if n else b""
        if len(data) != n:
            raise HeadError("EOF in body", got=len(data))
        return data, "length"
    return b"", "none"


class _CloseNow(Exception):
    """The response was written raw; close the connection."""


class Origin:
    def __init__(self, name, log, git_root, tls_ctx=None):
        self.name = name
        self.log = log
        self.git_root = git_root
        self.tls_ctx = tls_ctx

    def handle(self, conn):
        try:
            local = conn.getsockname()
            peer = conn.getpeername()
            self.log(srv=self.name, ev="accept", local=addr_text(local), port=local[1],
                     peer=addr_text(peer))
            if self.tls_ctx:
                try:
                    conn = self.tls_ctx.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.log(srv=self.name, ev="tls-error", port=local[1], error=str(e))
                    return
                self.log(srv=self.name, ev="tls", port=local[1],
                         sni=getattr(conn, "sni", None))
            rf = conn.makefile("rb")
            while True:
                try:
                    head = read_head(rf)
                except HeadError as e:
                    self.log(srv=self.name, ev="bad", port=local[1], error=str(e))
                    return
                if head is None:
                    return
                text = [h.decode("latin-1") for h in head]
                headers = []
                for h in text[1:]:
                    k, _, v = h.partition(":")
                    headers.append([k, v.strip()])
                self.log(srv=self.name, ev="request", local=addr_text(local), port=local[1],
                         line=text[0], headers=headers)
                hd = {}
                for k, v in headers:
                    hd[k.lower()] = v
                parts = text[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, version = parts
                if hd.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    body, framing = read_body(rf, hd)
                except (HeadError, ValueError) as e:
                    extra = {}
                    if getattr(e, "got", None) is not None:
                        extra["got"] = e.got
                    self.log(srv=self.name, ev="bad", port=local[1], error=str(e), **extra)
                    return
                if framing != "none":
                    self.log(srv=self.name, ev="body", port=local[1], framing=framing,
                             len=len(body), sha256=sha256(body))
                close = (hd.get("connection", "").lower() == "close" or version == "HTTP/1.0")
                try:
                    close = self.respond(conn, method, target, hd, body, close)
                except _CloseNow:
                    return
                if close:
                    return
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def respond(self, conn, method, target, hd, body, close):
        status, extra, payload, chunks = 200, [], b"", None
        path = target.split("?", 1)[0]
        if path.startswith("/git/"):
            status, extra, payload = self.git(method, target, hd, body)
        elif path == "/redirect-to-evil":
            status = 302
            extra.append(("Location", "http://evil.test/"))
        elif path == "/redirect":
            from urllib.parse import parse_qs
            status = 302
            extra.append(("Location", parse_qs(target.partition("?")[2]).get("to", ["/"])[0]))
        elif path.startswith("/ws") and hd.get("upgrade", "").lower() == "websocket" and \
                "upgrade" in hd.get("connection", "").lower():
            self.websocket(conn)
            raise _CloseNow()
        elif path.startswith("/size/"):
            payload = det_bytes(int(path[6:]))
            extra.append(("X-Body-Sha256", sha256(payload)))
        elif path.startswith("/chunked/"):
            payload = det_bytes(int(path[9:]))
            extra.append(("X-Body-Sha256", sha256(payload)))
            sizes, chunks, off, k = [1, 7, 4096, 65536, 100003], [], 0, 0
            while off < len(payload):
                n = sizes[k % len(sizes)]
                chunks.append(payload[off:off + n])
                off += n
                k += 1
        elif path == "/echo":
            payload = json.dumps({"len": len(body), "sha256": sha256(body),
                                  "te": hd.get("transfer-encoding"),
                                  "cl": hd.get("content-length")}).encode()
            extra.append(("Content-Type", "application/json"))
        elif path == "/host":
            payload = hd.get("host", "").encode("latin-1")
        elif path == "/bye":
            payload, close = b"bye\n", True
        elif path == "/eof":
            # no framing: the body ends when the connection does
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Origin: %s\r\n\r\nuntil-close\n" %
                         self.name.encode())
            raise _CloseNow()
        elif path == "/204":
            status = 204
        elif path == "/bad-response":
            conn.sendall(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
            raise _CloseNow()
        else:
            payload = ("hello from %s %s %s\n" % (self.name, method, target)).encode("latin-1")
        reason = {200: "OK", 204: "No Content", 302: "Found", 404: "Not Found",
                  500: "Internal Server Error"}.get(status, "X")
        head = ["HTTP/1.1 %d %s" % (status, reason), "X-Origin: " + self.name]
        head += ["%s: %s" % kv for kv in extra]
        if chunks is not None:
            head.append("Transfer-Encoding: chunked")
        elif status != 204:
            head.append("Content-Length: %d" % len(payload))
        if close:
            head.append("Connection: close")
        out = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD" or status == 204:
            conn.sendall(out)
            return close
        if chunks is not None:
            conn.sendall(out)
            for c in chunks:
                conn.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            return close
        conn.sendall(out + payload)
        return close

    def websocket(self, conn):
        """After a 101, echo every byte until EOF, then log how many came."""
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nX-Origin: %s\r\n\r\n" % self.name.encode())
        total, first = 0, b""
        try:
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                if len(first) < 200:
                    first += d[:200 - len(first)]
                total += len(d)
                conn.sendall(d)
        except OSError:
            pass
        self.log(srv=self.name, ev="upgraded", bytes=total, first=first.decode("latin-1"))

    def git(self, method, target, hd, body):
        path, _, query = target.partition("?")
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": self.git_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": method,
            "PATH_INFO": path[len("/git"):],
            "QUERY_STRING": query,
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "HOME": self.git_root,
        }
        if "content-type" in hd:
            env["CONTENT_TYPE"] = hd["content-type"]
        if "content-encoding" in hd:
            env["HTTP_CONTENT_ENCODING"] = hd["content-encoding"]
        if "git-protocol" in hd:
            env["GIT_PROTOCOL"] = hd["git-protocol"]
        p = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        out = p.stdout
        sep = out.find(b"\r\n\r\n")
        sl = 4
        if sep < 0:
            sep, sl = out.find(b"\n\n"), 2
        if sep < 0:
            return 500, [], p.stderr
        status, extra = 200, []
        for line in out[:sep].decode("latin-1").replace("\r\n", "\n").split("\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                extra.append((k.strip(), v.strip()))
        return status, extra, out[sep + sl:]


class Echo:
    def __init__(self, log):
        self.log = log

    def handle(self, conn):
        try:
            local = conn.getsockname()
            self.log(srv="echo", ev="accept", local=addr_text(local), port=local[1],
                     peer=addr_text(conn.getpeername()))
            total = 0
            first = b""
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                if len(first) < 200:
                    first += d[:200 - len(first)]
                total += len(d)
                conn.sendall(d)
            self.log(srv="echo", ev="eof", port=local[1], bytes=total,
                     first=first.decode("latin-1"))
        except OSError:
            pass
        finally:
            conn.close()


QTYPES = {1: "A", 28: "AAAA", 12: "PTR", 16: "TXT", 5: "CNAME", 15: "MX", 33: "SRV",
          65: "HTTPS", 255: "ANY"}


def dns_server(sock, log, table):
    while True:
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            return
        try:
            qid, flags, qd = data[0:2], int.from_bytes(data[2:4], "big"), \
                int.from_bytes(data[4:6], "big")
            pos, labels = 12, []
            while True:
                n = data[pos]
                pos += 1
                if n == 0:
                    break
                labels.append(data[pos:pos + n].decode("latin-1"))
                pos += n
            qtype = int.from_bytes(data[pos:pos + 2], "big")
            qend = pos + 4
        except (IndexError, ValueError):
            log(srv="dns", ev="bad", size=len(data))
            continue
        name = ".".join(labels)
        tname = QTYPES.get(qtype, str(qtype))
        log(srv="dns", ev="query", name=name, type=tname, qd=qd)
        rec = table.get(name.lower().rstrip("."))
        answers = []
        if rec:
            for value in rec.get(tname, []):
                if tname == "A":
                    rdata = socket.inet_pton(socket.AF_INET, value)
                else:
                    rdata = socket.inet_pton(socket.AF_INET6, value)
                answers.append(b"\xc0\x0c" + qtype.to_bytes(2, "big") + b"\x00\x01" +
                               (5).to_bytes(4, "big") + len(rdata).to_bytes(2, "big") + rdata)
        rcode = 0 if rec else 3
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        resp = (qid + rflags.to_bytes(2, "big") + (1).to_bytes(2, "big") +
                len(answers).to_bytes(2, "big") + b"\x00\x00\x00\x00" + data[12:qend] +
                b"".join(answers))
        try:
            sock.sendto(resp, peer)
        except OSError:
            pass


def start_sshd(state, log_path):
    """A private sshd (own config, host key, authorized key; no PAM) in a
    mount namespace of its own, where /run is a fresh tmpfs: sshd needs
    /run/sshd for privilege separation and nothing is created on the host."""
    sshd = "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        return None, None
    port, socks = listen_pair(0)
    for s in socks:
        s.close()
    d = os.path.join(state, "ssh")
    cfg = os.path.join(d, "sshd_config")
    with open(cfg, "w") as f:
        f.write("\n".join([
            "Port %d" % port, "ListenAddress 0.0.0.0", "ListenAddress ::",
            "HostKey %s/host_ed25519" % d, "PidFile none", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "AuthorizedKeysFile %s/authorized_keys" % d, "AllowUsers root",
            "LogLevel VERBOSE", "MaxStartups 50", ""]))
    logf = open(log_path, "ab")
    p = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
         "mount -t tmpfs -o mode=755 cordon-test-run /run && mkdir -m 755 /run/sshd && "
         "exec /usr/sbin/sshd -D -e -f \"$0\"", cfg],
        stdout=logf, stderr=logf)
    logf.close()
    return port, p


def serve(state):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "local", "198.51.100.0/24", "dev", "lo"], check=True)
    subprocess.run(["ip", "-6", "route", "add", "local", "2001:db8::/64", "dev", "lo"],
                   check=True)
    subprocess.run(["ip", "addr", "add", OWN4 + "/32", "dev", "lo"], check=True)
    log = Log(os.path.join(state, "log.jsonl"))
    git_root = os.path.join(state, "git")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(state, "tls", "leaf.pem"),
                        os.path.join(state, "tls", "leaf.key"))

    def sni_cb(sslobj, name, _ctx):
        sslobj.sni = name
    ctx.sni_callback = sni_cb

    ports = {}
    http = Origin("http", log, git_root)
    https = Origin("https", log, git_root, tls_ctx=ctx)
    echo = Echo(log)
    _, s = listen_pair(80)
    serve_forever(s, http.handle)
    ports["http_alt"], s = listen_pair(0)
    serve_forever(s, http.handle)
    _, s = listen_pair(443)
    serve_forever(s, https.handle)
    ports["https_alt"], s = listen_pair(0)
    serve_forever(s, https.handle)
    ports["echo"], s = listen_pair(0)
    serve_forever(s, echo.handle)
    _, s = listen_pair(22)
    serve_forever(s, echo.handle)

    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    ports["dns"] = u.getsockname()[1]
    threading.Thread(target=dns_server, args=(u, log, DNS_TABLE), daemon=True).start()

    sshd = None
    if os.path.exists(os.path.join(state, "ssh", "host_ed25519")):
        ports["ssh"], sshd = start_sshd(state, os.path.join(state, "sshd.log"))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    tmp = os.path.join(state, "ports.json.tmp")
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, os.path.join(state, "ports.json"))
    while not stop.is_set():
        stop.wait(1)
    if sshd:
        sshd.terminate()
        try:
            sshd.wait(5)
        except subprocess.TimeoutExpired:
            sshd.kill()
            sshd.wait()


# ---------------------------------------------------------------------------
# test side

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


def _run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, **kw)


def make_tls(d):
    """A CA and a leaf for allowed.test, *.allowed.test, 127.0.0.1."""
    os.makedirs(d)
    ca_key, ca, key, csr, leaf = (os.path.join(d, n) for n in
                                  ("ca.key", "ca.pem", "leaf.key", "leaf.csr", "leaf.pem"))
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=cordon test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", key, "-out", csr, "-subj", "/CN=allowed.test"])
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:allowed.test,DNS:*.allowed.test,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
          "-CAcreateserial", "-out", leaf, "-days", "2", "-extfile", ext])


def make_git(d):
    """A bare repository with one commit, served over http, https and ssh."""
    work = os.path.join(d, "work")
    os.makedirs(work)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", HOME=d)
    _run(["git", "init", "-q", "-b", "main", work], env=env)
    with open(os.path.join(work, "README"), "w") as f:
        f.write("cordon egress test repository\n")
    with open(os.path.join(work, "blob.bin"), "wb") as f:
        f.write(det_bytes(300000))
    _run(["git", "-C", work, "add", "."], env=env)
    _run(["git", "-C", work, "commit", "-q", "-m", "first"], env=env)
    _run(["git", "clone", "-q", "--bare", work, os.path.join(d, "repo.git")], env=env)
    # push.git: the same history, and git http-backend takes pushes to it
    # (anonymous receive-pack must be switched on per repository).
    _run(["git", "clone", "-q", "--bare", work, os.path.join(d, "push.git")], env=env)
    _run(["git", "--git-dir", os.path.join(d, "push.git"), "config", "http.receivepack",
          "true"], env=env)
    shutil.rmtree(work)
    head = _run(["git", "--git-dir", os.path.join(d, "repo.git"), "rev-parse", "HEAD"],
                env=env).stdout.decode().strip()
    return head


def make_ssh(d):
    os.makedirs(d)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "host_ed25519")])
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "client")])
    shutil.copy(os.path.join(d, "client.pub"), os.path.join(d, "authorized_keys"))


def ensure_debian(packages):
    """Install the Debian packages whose files are missing ({package: path}),
    as root, with services kept from starting (the tests run their own
    private sshd; the system one must not be left running). Returns None, or
    the reason they cannot be had."""
    missing = [pkg for pkg, path in packages.items() if not os.path.exists(path)]
    if not missing:
        return None
    if os.geteuid() != 0:
        return "%s not installed (apt-get install %s as root)" % (
            ", ".join(missing), " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    prc = "/usr/sbin/policy-rc.d"
    made = False
    if not os.path.exists(prc):
        with open(prc, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(prc, 0o755)
        made = True
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                           timeout=600)
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    finally:
        if made:
            os.unlink(prc)
    still = [pkg for pkg, path in packages.items() if not os.path.exists(path)]
    if still:
        return "cannot install %s: %s" % (" ".join(still), (p.stderr or p.stdout)[-300:])
    return None


def ensure_sshd():
    return ensure_debian({"openssh-server": "/usr/sbin/sshd",
                          "openssh-client": "/usr/bin/ssh-keygen"})


def netns_of(pid):
    return os.readlink("/proc/%d/ns/net" % pid)


class Lab:
    def __init__(self, with_ssh=True):
        self.state = tempfile.mkdtemp(prefix="cordon-egress-lab-")
        os.chmod(self.state, 0o755)
        self.proc = None
        self.ssh_skip = None
        self.ssh_host_pub = None
        try:
            self._start(with_ssh)
        except BaseException:
            self.stop()
            raise

    def _start(self, with_ssh):
        why = ensure_debian({"openssl": "/usr/bin/openssl", "iproute2": "/sbin/ip",
                             "util-linux": "/usr/bin/nsenter", "git": "/usr/bin/git",
                             "curl": "/usr/bin/curl"})
        if why:
            raise RuntimeError("the egress lab needs: " + why)
        make_tls(os.path.join(self.state, "tls"))
        with open(os.path.join(self.state, "tls", "ca.pem")) as f:
            self.ca_pem = f.read()
        self.git_head = make_git(os.path.join(self.state, "git"))
        self.git_repo = os.path.join(self.state, "git", "repo.git")
        if with_ssh:
            self.ssh_skip = ensure_sshd()
            if not self.ssh_skip:
                make_ssh(os.path.join(self.state, "ssh"))
        else:
            self.ssh_skip = "not asked for"
        self.log_path = os.path.join(self.state, "log.jsonl")
        with open(os.path.join(self.state, "lab.out"), "wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--net", "--", PY, os.path.abspath(__file__), "serve", self.state],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        ports_file = os.path.join(self.state, "ports.json")
        deadline = time.monotonic() + 30
        while not os.path.exists(ports_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(self.state, "lab.out")) as f:
                    raise RuntimeError("the lab did not start:\n" + f.read())
            time.sleep(0.02)
        with open(ports_file) as f:
            self.ports = json.load(f)
        self.ns = "/proc/%d/ns/net" % self.proc.pid
        self.netns_id = netns_of(self.proc.pid)
        self.check_isolated()
        if not self.ssh_skip:
            if "ssh" not in self.ports:
                self.ssh_skip = "the private sshd did not start"
            else:
                self.wait_port(self.ports["ssh"])
                with open(os.path.join(self.state, "ssh", "host_ed25519.pub")) as f:
                    self.ssh_host_pub = f.read().strip()

    def check_isolated(self):
        """Refuse to run anything unless the lab's namespace is a new one
        with no route but the local ones: then no test can send a packet off
        this machine, whatever cordon does."""
        if self.proc.poll() is not None:
            raise RuntimeError("the lab process is gone")
        if netns_of(self.proc.pid) != self.netns_id or \
                self.netns_id == os.readlink("/proc/self/ns/net"):
            raise RuntimeError("the lab is not in a network namespace of its own")
        for fam in ("-4", "-6"):
            r = subprocess.run(["nsenter", "--net=" + self.ns, "--", "ip", "-o", fam, "route",
                                "show", "table", "all"], capture_output=True, text=True)
            out = [ln for ln in r.stdout.splitlines() if ln.strip()]
            if r.returncode != 0 or not out or \
                    any(" dev lo " not in ln + " " or "default" in ln for ln in out):
                raise RuntimeError("the lab namespace has a route off lo: " + r.stdout +
                                   r.stderr)
        r = subprocess.run(["nsenter", "--net=" + self.ns, "--", "ip", "-o", "link"],
                           capture_output=True, text=True)
        links = [ln.split(":")[1].strip() for ln in r.stdout.splitlines() if ln.strip()]
        if r.returncode != 0 or links != ["lo"]:
            raise RuntimeError("the lab namespace has links other than lo: " + r.stdout)

    def wait_port(self, port):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = subprocess.run(["nsenter", "--net=" + self.ns, "--", PY, "-c",
                                "import socket; socket.create_connection(('127.0.0.1', %d), 2)"
                                % port], capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.05)

    # --- running things inside the lab's namespace

    def argv(self, argv):
        return ["nsenter", "--net=" + self.ns, "--"] + list(argv)

    def run(self, sb, *args, env=None, input=None, timeout=120, check_sanitizers=True,
            text=True, **kw):
        """`cordon ARGS` as the sandbox's user, with the lab as its network."""
        if self.proc.poll() is not None or netns_of(self.proc.pid) != self.netns_id:
            raise RuntimeError("the lab namespace is gone")
        p = subprocess.run(self.argv(sb.argv(args)), cwd=sb.ws, env=sb.env(env), input=input,
                           capture_output=True, text=text, timeout=timeout, **kw)
        if check_sanitizers:
            err = p.stderr if text else p.stderr.decode("latin-1")
            for m in SANITIZER_MARKERS:
                assert m not in err, "sanitizer report:\n" + err
        return p

    # --- logs

    def mark(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def events(self, since=0, srv=None, ev=None):
        out = []
        with open(self.log_path, "rb") as f:
            f.seek(since)
            for line in f.read().decode().splitlines():
                if not line:
                    continue
                r = json.loads(line)
                if srv and r["srv"] not in (srv if isinstance(srv, (list, tuple)) else (srv,)):
                    continue
                if ev and r["ev"] != ev:
                    continue
                out.append(r)
        return out

    def sshd_log(self):
        try:
            with open(os.path.join(self.state, "sshd.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # --- teardown

    def stop(self):
        if self.proc and self.proc.poll() is None:
            ns = None
            try:
                ns = netns_of(self.proc.pid)
            except OSError:
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            # Whatever still lives in the namespace (sshd children, a stray
            # client) is killed, so the namespace goes away with it.
            if ns:
                for _ in range(3):
                    left = []
                    for d in os.listdir("/proc"):
                        if d.isdigit():
                            try:
                                if os.readlink("/proc/%s/ns/net" % d) == ns:
                                    left.append(int(d))
                            except OSError:
                                pass
                    if not left:
                        break
                    for pid in left:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    time.sleep(0.1)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.state, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit("usage: egress_lab.py serve STATEDIR")
