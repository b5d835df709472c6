"""The host side of the credential tests (test_credentials*.py).

- `Origin`: an HTTP and an HTTPS origin on the host's 127.0.0.1 (one thread
  per connection, in the test process), with a certificate from a test CA
  for api.test, other.test, allowed.test, www.allowed.test, excluded.test
  and 127.0.0.1. It logs every TLS handshake and every request: the request
  line, every header as received, the body's framing, length and sha256,
  the body itself (up to 1 MiB), and where each of `watch` (byte strings a
  test sets: the real values) occurs in it. It answers:
    /reflect  the request echoed back: the body is the raw request head and
              body as received; X-Echo-Auth, X-Echo-Api-Key and
              X-Echo-Injected carry the Authorization, X-Api-Key and
              X-Injected fields, the reason phrase is "OK " + X-Reason, and
              with X-Name a field of that name is added ("X-Name-<value>: 1").
              ?chunked=N answers chunked in N-byte chunks; ?trickle=N writes
              the body N bytes at a time (one TLS record each); ?eof=1 has no
              framing: the body ends when the connection does.
    /ws       with "Upgrade: websocket": 101, then the Authorization field
              as received, then an echo of every byte until EOF.
    /emit?n=N&at=O1,O2  N bytes of FILL with the X-Emit field written at
              each offset (Content-Length, or chunked with &chunked=K).
    ?delay=MS on any of them waits that long before answering.
    /summary  the body's length and sha256 as JSON.
    anything else: "hello METHOD TARGET\\n".
- `Creds`: one test's view (one `sb`): settings, running cordon with
  --audit, the audit records, the origin's log since the test began, and
  the leak check: every real value a test registers is looked for in every
  byte cordon printed or wrote (stdout, stderr, audit files, the protect
  registry) when the test ends.

Names reach 127.0.0.1 through network.hosts; the IP-literal allow entries
127.0.0.1:PORT let the resolved-address guard pass loopback for those ports.
"""
import hashlib
import json
import os
import secrets
import socket
import ssl
import string
import threading
import time

import tls_lab

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["api.test", "other.test", "allowed.test", "www.allowed.test", "excluded.test"]
FILL = b"fake_value_#ab\nf"  # near misses of every sentinel's prefix, 16 bytes
SENTINEL_RE = r"^fake_value_[a-z0-9]+$"
CORDON_CA = "/dev/cordon-ca.pem"
SANITIZER_MARKERS = tls_lab.SANITIZER_MARKERS
MIB = 1 << 20


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def real_value(prefix="sk-live-", n=40):
    """A random secret of n bytes ([a-z0-9-] after the prefix)."""
    v = prefix + secrets.token_hex(n)
    return v[:n]


def build_body(size, at, values):
    """FILL repeated to `size` bytes, with values[name] written over the
    bytes at each (offset, name) of `at` (the same construction as the
    client's `gen`). Returns bytes."""
    reps = size // len(FILL) + 1
    b = bytearray((FILL * reps)[:size])
    for off, name in at:
        v = values[name].encode()
        b[off:off + len(v)] = v
    return bytes(b[:size])


def substituted(body, pairs):
    """body with each (from, to) replaced."""
    for a, b in pairs:
        body = body.replace(a.encode(), b.encode())
    return body


def offsets(data, needle):
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


# ---------------------------------------------------------------------------
# the origin

class _Head(Exception):
    pass


def _read_head(rf):
    raw, lines = b"", []
    while True:
        line = rf.readline(65536)
        if not line:
            if lines:
                raise _Head("EOF inside a head")
            return None, None
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue
            return lines, raw + line
        raw += line
        lines.append(line.rstrip(b"\r\n"))


def _read_body(rf, hd):
    te = hd.get("transfer-encoding", "").lower()
    if te:
        if te != "chunked":
            raise _Head("unsupported transfer-encoding " + te)
        out = []
        while True:
            size_line = rf.readline(1024)
            if not size_line:
                raise _Head("EOF in a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while rf.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(out), "chunked"
            data = rf.read(size)
            if len(data) != size:
                raise _Head("EOF in a chunk")
            out.append(data)
            rf.readline(16)
    cl = hd.get("content-length")
    if cl is not None:
        n = int(cl)
        data = rf.read(n) if n else b""
        if len(data) != n:
            raise _Head("EOF in a body")
        return data, "length"
    return b"", "none"


class Origin:
    def __init__(self, certfile, keyfile):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.ctx.sni_callback = self._sni
        self.lock = threading.Lock()
        self.log = []
        self.watch = []
        self.nconn = 0
        self.conns = set()
        self.socks = []
        self.threads = []
        self.tls_port = self._listen(True)
        self.plain_port = self._listen(False)

    @staticmethod
    def _sni(sslsock, name, _ctx):
        sslsock.sni = name

    def _listen(self, tls):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        t = threading.Thread(target=self._accept, args=(s, tls), daemon=True)
        t.start()
        self.socks.append(s)
        self.threads.append(t)
        return s.getsockname()[1]

    def record(self, **ev):
        with self.lock:
            self.log.append(ev)

    def mark(self):
        with self.lock:
            return len(self.log)

    def events(self, since=0, ev=None):
        with self.lock:
            out = list(self.log[since:])
        return [e for e in out if ev is None or e["ev"] == ev]

    def _accept(self, sock, tls):
        while True:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            with self.lock:
                self.nconn += 1
                n = self.nconn
                self.conns.add(c)
            threading.Thread(target=self._handle, args=(c, n, tls), daemon=True).start()

    def _handle(self, raw, n, tls):
        conn = raw
        self.record(ev="accept", conn=n, tls=tls)
        try:
            conn.settimeout(60)
            sni = None
            if tls:
                conn = self.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                try:
                    conn.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    self.record(ev="tls-error", conn=n, error=str(e))
                    return
                sni = getattr(conn, "sni", None)
                self.record(ev="handshake", conn=n, sni=sni)
            rf = conn.makefile("rb")
            while True:
                try:
                    head, rawhead = _read_head(rf)
                except _Head as e:
                    self.record(ev="bad", conn=n, error=str(e))
                    return
                if head is None:
                    return
                text = [h.decode("latin-1") for h in head]
                headers = []
                for h in text[1:]:
                    k, _, v = h.partition(":")
                    headers.append([k, v.strip()])
                hd = {k.lower(): v for k, v in headers}
                if hd.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    body, framing = _read_body(rf, hd)
                except (_Head, ValueError) as e:
                    self.record(ev="request", conn=n, tls=tls, sni=sni, line=text[0],
                                headers=headers, error=str(e))
                    return
                with self.lock:
                    watch = list(self.watch)
                self.record(ev="request", conn=n, tls=tls, sni=sni, line=text[0],
                            headers=headers, framing=framing, len=len(body),
                            sha256=sha256(body), body=body if len(body) <= MIB else None,
                            found={w: offsets(body, w.encode()) for w in watch},
                            rawhead=rawhead)
                parts = text[0].split(" ")
                if len(parts) != 3:
                    return
                if not self._respond(conn, parts[0], parts[1], hd, rawhead, body):
                    return
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.lock:
                self.conns.discard(raw)

    def _respond(self, conn, method, target, hd, rawhead, body):
        path, _, query = target.partition("?")
        q = {}
        for kv in query.split("&"):
            k, _, v = kv.partition("=")
            q[k] = v
        reason, extra, payload, chunk, trickle, eof = "OK", [], b"", 0, 0, False
        if q.get("delay"):
            time.sleep(int(q["delay"]) / 1000)
        if path == "/ws" and hd.get("upgrade", "").lower() == "websocket":
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n\r\n" +
                         hd.get("authorization", "").encode("latin-1") + b"\n")
            while True:
                d = conn.recv(65536)
                if not d:
                    return False
                conn.sendall(d)
        if path == "/reflect":
            payload = rawhead + body
            reason = "OK " + hd.get("x-reason", "")
            for name, echo in (("authorization", "X-Echo-Auth"), ("x-api-key", "X-Echo-Api-Key"),
                               ("x-injected", "X-Echo-Injected")):
                if name in hd:
                    extra.append((echo, hd[name]))
            if "x-name" in hd:
                extra.append(("X-Name-" + hd["x-name"], "1"))
            chunk = int(q.get("chunked") or 0)
            trickle = int(q.get("trickle") or 0)
            eof = q.get("eof") == "1"
        elif path == "/emit":
            size = int(q["n"])
            at = [(int(o), "v") for o in q.get("at", "").split(",") if o]
            payload = build_body(size, at, {"v": hd.get("x-emit", "")})
            extra.append(("X-Body-Sha256", sha256(payload)))
            chunk = int(q.get("chunked") or 0)
        elif path == "/summary":
            payload = json.dumps({"len": len(body), "sha256": sha256(body)}).encode()
        else:
            payload = ("hello %s %s\n" % (method, target)).encode("latin-1")
        close = hd.get("connection", "").lower() == "close"
        head = ["HTTP/1.1 200 " + reason] + ["%s: %s" % kv for kv in extra]
        if chunk:
            head.append("Transfer-Encoding: chunked")
        elif eof:
            close = True
        else:
            head.append("Content-Length: %d" % len(payload))
        if close:
            head.append("Connection: close")
        out = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD":
            conn.sendall(out)
        elif chunk:
            parts = [payload[i:i + chunk] for i in range(0, len(payload), chunk)]
            conn.sendall(out + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) +
                         b"0\r\n\r\n")
        elif trickle:
            conn.sendall(out)
            for i in range(0, len(payload), trickle):
                conn.sendall(payload[i:i + trickle])
        else:
            conn.sendall(out + payload)
        return not close

    def stop(self):
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(10)
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Lab:
    """A test CA, a leaf for the origin's names, and the origin; made once
    per test module."""

    def __init__(self):
        import tempfile
        import shutil
        self.dir = tempfile.mkdtemp(prefix="cordon-creds-pki-", dir="/tmp")
        try:
            os.chmod(self.dir, 0o755)
            self.ca, self.ca_key = tls_lab.make_ca(self.dir, "ca", "cordon credentials test CA")
            self.leaf, self.leaf_key = tls_lab.make_leaf(
                self.dir, "origin", self.ca, self.ca_key,
                ["DNS:" + n for n in NAMES] + ["IP:127.0.0.1"])
            with open(self.ca) as f:
                self.ca_pem = f.read()
            self.origin = Origin(self.leaf, self.leaf_key)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def stop(self):
        import shutil
        self.origin.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# the client inside the sandbox

CLIENT_SRC = open(os.path.join(HERE, "creds_client.py")).read()


def header(resp_or_event, name):
    """The values of a header (a list; [] when absent)."""
    return [v for k, v in resp_or_event["headers"] if k.lower() == name.lower()]


def names(event):
    return [k for k, _ in event["headers"]]


# ---------------------------------------------------------------------------
# one test's view

class Creds:
    def __init__(self, sb, lab):
        self.sb = sb
        self.lab = lab
        self.origin = lab.origin
        self.T = lab.origin.tls_port
        self.H = lab.origin.plain_port
        self.since = lab.origin.mark()
        self.n = 0
        self.audit_path = None
        self.reals = []      # every real value of this test (the leak check)
        self.outputs = []    # every byte cordon printed in this test
        self.ca_copy = sb.write("home/ws/test-ca.pem", lab.ca_pem)
        self.secret_dir = sb.mkdir("home/ws/secret")

    # --- secrets

    def real(self, prefix="sk-live-", n=40):
        v = real_value(prefix, n)
        self.reals.append(v)
        with self.origin.lock:
            self.origin.watch.append(v)
        return v

    def secret_file(self, name, content, mode=0o644):
        """A credential file (in the workspace, so that the sandbox sees the
        path at all) owned by the run's user."""
        return self.sb.write("home/ws/secret/" + name, content, mode=mode)

    # --- settings

    def net(self, tls=True, **net):
        allow = ["%s:%d" % (h, p) for h in NAMES for p in (self.T, self.H)]
        allow += ["127.0.0.1:%d" % self.T, "127.0.0.1:%d" % self.H]
        n = {"allowedDomains": allow, "hosts": {h: "127.0.0.1" for h in NAMES},
             "upstreamCaFile": self.ca_copy}
        if tls:
            n["tlsTerminate"] = {} if tls is True else tls
        n.update(net)
        return n

    def settings(self, credentials=None, tls=True, fs=None, **net):
        obj = {"network": self.net(tls=tls, **net),
               "filesystem": fs if fs is not None else {"allowWrite": [self.sb.ws]}}
        if credentials is not None:
            obj["credentials"] = credentials
        self.n += 1
        return self.sb.settings(obj, name="creds-settings-%d.json" % self.n)

    # --- running

    def run(self, settings, *cmd, opts=(), env=None, input=None, timeout=60, audit=True, **kw):
        """cordon -s SETTINGS --audit FILE OPTS -- CMD (without --audit
        when audit is false: --audit would win over an --audit-fd in
        OPTS)."""
        self.n += 1
        self.audit_path = self.sb.path("outside", "audit-%d.jsonl" % self.n)
        args = (["-s", settings] if settings else []) + \
            (["--audit", self.audit_path] if audit else []) + list(opts) + ["--"] + list(cmd)
        p = self.sb.run(*args, env=env, input=input, timeout=timeout, **kw)
        self.outputs.append(("stdout", p.stdout))
        self.outputs.append(("stderr", p.stderr))
        return p

    def sh(self, settings, script, **kw):
        return self.run(settings, "/bin/sh", "-c", script, **kw)

    def client(self, settings, ops, env=None, timeout=60):
        """Run creds_client.py's operations inside cordon; one result each."""
        p = self.run(settings, PY, "-c", CLIENT_SRC, json.dumps(ops), env=env, timeout=timeout)
        assert p.returncode == 0, "client failed: rc=%d\n%s\n%s" % (p.returncode, p.stdout[-3000:],
                                                                    p.stderr[-3000:])
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert len(out) == len(ops), out
        for r in out:
            assert "exception" not in r, r
        return out

    # --- audit

    def audit(self, event=None):
        recs = []
        with open(self.audit_path) as f:
            for line in f:
                r = json.loads(line)
                assert r["v"] == 1 and r["verdict"] in ("allow", "deny"), r
                recs.append(r)
        assert recs and recs[0]["event"] == "run.start" and recs[-1]["event"] == "run.exit", recs
        return [r for r in recs if event is None or r["event"] == event]

    # --- the origin

    def events(self, ev=None):
        return self.origin.events(self.since, ev)

    def requests(self):
        return self.events("request")

    def reached(self):
        return [e for e in self.events() if e["ev"] in ("handshake", "request")]

    def reset(self):
        self.since = self.origin.mark()

    def settle(self, timeout=5.0):
        """Wait until every connection the origin accepted has ended (a
        bound on waiting, never a timing assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.origin.lock:
                if not self.origin.conns:
                    return
            time.sleep(0.02)

    # --- the leak check

    def leak_sources(self):
        """(where, bytes) of everything cordon printed or wrote: its output,
        every file under the test's tree except the credential files the
        test made, and the protect registry of the run's user."""
        out = [(w, t.encode("utf-8", "surrogateescape")) for w, t in self.outputs]
        secret = self.secret_dir
        for root, dirs, files in os.walk(self.sb.base):
            if root == secret or root.startswith(secret + os.sep):
                continue
            for f in files:
                p = os.path.join(root, f)
                try:
                    if os.path.islink(p) or os.path.getsize(p) > 64 * MIB:
                        continue
                    with open(p, "rb") as fh:
                        out.append((p, fh.read()))
                except OSError:
                    pass
        uid = self.sb.uid
        for d in ("/tmp/cordon-%d" % uid, os.path.join(self.sb.home, ".cache", "cordon")):
            for root, dirs, files in os.walk(d):
                for f in files:
                    p = os.path.join(root, f)
                    try:
                        with open(p, "rb") as fh:
                            out.append((p, fh.read()))
                    except OSError:
                        pass
        return out

    def check_no_leak(self, extra=()):
        found = []
        for where, data in list(self.leak_sources()) + list(extra):
            for v in self.reals:
                if v.encode() in data:
                    found.append((where, v[:6] + "..."))
        assert not found, "a real value leaked: %r" % found


def expand(template, env):
    return string.Template(template).substitute(env)
