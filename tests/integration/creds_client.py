"""The client side of the credential tests, run inside the sandbox as
`python3 -c SOURCE JSON`. It knows only what the sandbox holds: text fields
are templates in which ${NAME} is the sandbox's variable NAME (a sentinel,
when cordon masked it) or a file read with "files": {"NAME": PATH}. Prints
one JSON list of results, one per operation.

Operations (dicts with "op"):
  http  requests through cordon's proxy, all on one connection:
        "via": "connect" (CONNECT to "connect", host:port, on 127.0.0.1:3128,
        then TLS with "cafile", default cordon's CA, unless "tls": false),
        "socks" (SOCKS5 on 127.0.0.1:1080 by name, then TLS), or "plain"
        (absolute-form requests on 127.0.0.1:3128).
        Each of "reqs": {"method", "target", "host" (default the
        authority), "headers": [[k, v]], "body": text | "gen": {"size",
        "at": [[offset, text]]} (FILL repeated, each text written over the
        bytes at its offset), "chunked": [sizes], "ws_read": N (after a 101,
        read N bytes of the upgraded stream into "stream")}. "timeout" bounds
        each wait (default 30 s).
        Each answer: status, reason, headers, body (text, up to 1 MiB), len,
        sha256, and "counts": how often the value of each of "watch" (names)
        occurs in the raw answer (head and body as received); "absent": for
        each of "absent_rev" (names of variables holding a value reversed),
        whether that value (un-reversed) is absent from the raw answer.
  env   the values of the variables "names" (None when unset).
  read  a file: its text or the errno name.
"""
import errno
import hashlib
import json
import os
import socket
import ssl
import string
import sys

TIMEOUT = 30  # a bound on waiting, never a timing assertion
FILL = b"fake_value_#ab\nf"
ENV = dict(os.environ)


def expand(t):
    return string.Template(t).substitute(ENV)


def gen_body(g):
    size = g["size"]
    b = bytearray((FILL * (size // len(FILL) + 1))[:size])
    for off, t in g.get("at", []):
        v = expand(t).encode("latin-1")
        b[off:off + len(v)] = v
    return bytes(b[:size])


class Reader:
    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.raw = []
        self.eof = False

    def fill(self):
        if self.eof:
            return False
        try:
            d = self.s.recv(262144)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def take(self, n):
        d, self.buf = self.buf[:n], self.buf[n:]
        self.raw.append(d)
        return d

    def line(self):
        while b"\r\n" not in self.buf:
            if not self.fill():
                raise EOFError("EOF in a line: %r" % self.buf[:200])
        i = self.buf.index(b"\r\n")
        return self.take(i + 2)[:-2]

    def exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError("EOF in a body (%d of %d)" % (len(self.buf), n))
        return self.take(n)

    def rest(self):
        while self.fill():
            pass
        return self.take(len(self.buf))


def read_response(rd, head_method=False):
    rd.raw = []
    while True:
        status_line = rd.line().decode("latin-1")
        parts = status_line.split(" ", 2)
        status = int(parts[1])
        headers = []
        while True:
            ln = rd.line()
            if not ln:
                break
            k, _, v = ln.decode("latin-1").partition(":")
            headers.append([k, v.strip()])
        if 100 <= status < 200 and status != 101:
            continue  # interim
        break
    hd = {k.lower(): v for k, v in headers}
    body = b""
    if head_method or status in (101, 204, 304):
        pass
    elif hd.get("transfer-encoding", "").lower() == "chunked":
        out = []
        while True:
            size = int(rd.line().split(b";")[0], 16)
            if size == 0:
                while rd.line():
                    pass
                break
            out.append(rd.exact(size))
            rd.line()
        body = b"".join(out)
    elif "content-length" in hd:
        body = rd.exact(int(hd["content-length"]))
    else:
        body = rd.rest()
    raw = b"".join(rd.raw)
    return {"status": status, "reason": parts[2] if len(parts) > 2 else "",
            "headers": headers, "body": body.decode("latin-1") if len(body) <= (1 << 20) else None,
            "len": len(body), "sha256": hashlib.sha256(body).hexdigest()}, raw


def build_request(q, default_host):
    body = b""
    if "gen" in q:
        body = gen_body(q["gen"])
    elif "body" in q:
        body = expand(q["body"]).encode("latin-1")
    head = ["%s %s HTTP/1.1" % (q.get("method", "GET"), expand(q.get("target", "/")))]
    host = q.get("host", default_host)
    if host is not None:
        head.append("Host: " + expand(host))
    head += ["%s: %s" % (k, expand(v)) for k, v in q.get("headers", [])]
    if "chunked" in q:
        head.append("Transfer-Encoding: chunked")
        out, off, k = [], 0, 0
        sizes = q["chunked"]
        while off < len(body):
            n = sizes[k % len(sizes)]
            piece = body[off:off + n]
            out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
            off += n
            k += 1
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1"), b"".join(out) + b"0\r\n\r\n"
    if body or q.get("method") in ("POST", "PUT"):
        head.append("Content-Length: %d" % len(body))
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1"), body


def open_conn(op, res):
    global TIMEOUT
    TIMEOUT = op.get("timeout", TIMEOUT)
    via = op.get("via", "connect")
    if via == "plain":
        s = socket.create_connection(("127.0.0.1", 3128), TIMEOUT)
        s.settimeout(TIMEOUT)
        return s
    authority = op["connect"]
    host, _, port = authority.rpartition(":")
    if via == "socks":
        s = socket.create_connection(("127.0.0.1", 1080), TIMEOUT)
        s.settimeout(TIMEOUT)
        s.sendall(b"\x05\x01\x00")
        s.recv(2)
        name = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + int(port).to_bytes(2, "big"))
        rep = b""
        while len(rep) < 10:
            d = s.recv(10 - len(rep))
            if not d:
                break
            rep += d
        res["socks"] = rep[1] if len(rep) > 1 else None
        if res["socks"] != 0:
            s.close()
            return None
    else:
        s = socket.create_connection(("127.0.0.1", 3128), TIMEOUT)
        s.settimeout(TIMEOUT)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
        rd = Reader(s)
        r, _ = read_response(rd, head_method=True)
        res["connect"] = r
        if r["status"] != 200:
            hd = {k.lower(): v for k, v in r["headers"]}
            if "content-length" in hd:
                r["body"] = rd.exact(int(hd["content-length"])).decode("latin-1")
            s.close()
            return None
    if not op.get("tls", True):
        return s
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(op.get("cafile", "/dev/cordon-ca.pem"))
    try:
        ss = ctx.wrap_socket(s, server_hostname=op.get("sni", host))
    except ssl.SSLError as e:
        res["tls"] = {"ok": False, "error": str(e)}
        return None
    cert = ss.getpeercert()
    issuer = dict(x[0] for x in cert.get("issuer", ()))
    res["tls"] = {"ok": True, "issuer": issuer.get("commonName")}
    return ss


def op_http(op):
    res = {}
    for k, p in op.get("files", {}).items():
        with open(p, "rb") as f:
            ENV[k] = f.read().decode("latin-1").rstrip("\n")
    s = open_conn(op, res)
    if s is None:
        return res
    rd = Reader(s)
    res["responses"] = []
    default_host = op.get("connect")
    for q in op.get("reqs", []):
        try:
            host = default_host
            if op.get("via") == "plain":
                t = expand(q["target"])
                host = t.split("/")[2]
            head, body = build_request(q, host)
            s.sendall(head)
            if body:
                s.sendall(body)
            r, raw = read_response(rd, head_method=q.get("method") == "HEAD")
            if r["status"] == 101 and q.get("ws_read"):
                s.sendall(b"ping\n")
                rd.raw = []
                r["stream"] = rd.exact(q["ws_read"]).decode("latin-1")
                raw += b"".join(rd.raw)
        except (EOFError, OSError) as e:
            res["responses"].append({"error": str(e)})
            break
        r["counts"] = {n: raw.count(ENV[n].encode("latin-1")) for n in op.get("watch", [])
                       if ENV.get(n)}
        r["absent"] = {n: ENV[n][::-1].encode("latin-1") not in raw
                       for n in op.get("absent_rev", [])}
        res["responses"].append(r)
    s.close()
    return res


def op_read(op):
    try:
        with open(op["path"], "rb") as f:
            return {"ok": f.read().decode("latin-1")}
    except OSError as e:
        return {"errno": errno.errorcode.get(e.errno, str(e.errno))}


def main():
    out = []
    for op in json.loads(sys.argv[1]):
        try:
            if op["op"] == "http":
                out.append(op_http(op))
            elif op["op"] == "env":
                out.append({k: os.environ.get(k) for k in op["names"]})
            elif op["op"] == "read":
                out.append(op_read(op))
            else:
                raise SystemExit("creds_client: unknown op " + op["op"])
        except Exception as e:  # report, do not hide the other results
            out.append({"exception": "%s: %s" % (type(e).__name__, e)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
