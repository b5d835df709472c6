"""The client side of the TLS interception tests, run inside the sandbox as
`python3 -c SOURCE JSON` (the source travels on the command line). It talks
to cordon's listeners byte by byte and prints one JSON list of results, one
per operation.

Operations (dicts with "op"):
  tunnel  CONNECT "connect" (host:port) through 127.0.0.1:3128 (or SOCKS5
          through 127.0.0.1:1080 with "socks": true), then either
          - "tls": {"sni", "cafile", "verify", "alpn"}: a TLS handshake (the
            peer certificate comes back as base64 DER, with the ALPN and the
            alert of a failed handshake), then "reqs" on that connection;
          - "send": hex bytes written raw, then everything read until the
            peer closes ("received", hex);
          - nothing: wait for the peer to close ("idle").
          Each request in "reqs" is {"raw": text} or {"method", "path",
          "host", "headers": [[k, v]], "body_gen": N, "chunked": [sizes],
          "ws": text}; answers carry status, reason, headers, body (text,
          first 2000 bytes), body length and sha256.
  multi   several tunnels ("steps", each like `tunnel`), each kept open
          until the operation ends; "retry_503" on a step retries it while
          the answer is 503 (a bound on waiting for the proxy to see an
          earlier close); "close": true closes a step's tunnel at once,
          "close_kept": true closes the kept ones before the step.
  read    read a file: its text or the errno name.
  env     the values of the variables "names".
"""
import base64
import errno
import hashlib
import json
import random
import socket
import ssl
import sys
import time

TIMEOUT = 15  # a bound on waiting, never a timing assertion


def det_bytes(n):
    return random.Random(n).randbytes(n)


class Reader:
    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.eof = False

    def fill(self):
        if self.eof:
            return False
        try:
            d = self.s.recv(262144)
        except (ConnectionResetError, ssl.SSLEOFError):
            d = b""
        except ssl.SSLZeroReturnError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def line(self):
        while b"\r\n" not in self.buf:
            if not self.fill():
                raise EOFError("EOF in a line: %r" % self.buf[:200])
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i], self.buf[i + 2:]
        return ln

    def exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError("EOF in a body (%d of %d)" % (len(self.buf), n))
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def rest(self):
        while self.fill():
            pass
        d, self.buf = self.buf, b""
        return d


def read_response(rd, head_method=False):
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
    hd = {k.lower(): v for k, v in headers}
    body = b""
    if head_method or status in (101, 204, 304) or 100 <= status < 200:
        pass
    elif hd.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(rd.line().split(b";")[0], 16)
            if size == 0:
                while rd.line():
                    pass
                break
            body += rd.exact(size)
            rd.line()
    elif "content-length" in hd:
        body = rd.exact(int(hd["content-length"]))
    else:
        body = rd.rest()
    return {"status": status, "reason": parts[2] if len(parts) > 2 else "",
            "headers": headers, "body": body[:2000].decode("latin-1"), "len": len(body),
            "sha256": hashlib.sha256(body).hexdigest()}


def build_request(q, default_host):
    if "raw" in q:
        return q["raw"].encode("latin-1")
    body = b""
    if "body_gen" in q:
        body = det_bytes(q["body_gen"])
    elif "body" in q:
        body = q["body"].encode()
    head = ["%s %s HTTP/1.1" % (q.get("method", "GET"), q.get("path", "/")),
            "Host: %s" % q.get("host", default_host)]
    head += ["%s: %s" % (k, v) for k, v in q.get("headers", [])]
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
        data = b"".join(out) + b"0\r\n\r\n"
    else:
        if body or q.get("method") in ("POST", "PUT"):
            head.append("Content-Length: %d" % len(body))
        data = body
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


def wait_end(s, timeout):
    """How the connection ended: "eof", "reset", or "open" (still open when
    the bound ran out)."""
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return "eof", got
            got += d
    except socket.timeout:
        return "open", got
    except ConnectionResetError:
        return "reset", got
    except ssl.SSLError as e:
        return "tls-error: " + str(e), got


def open_tunnel(step, res):
    authority = step["connect"]
    host, _, port = authority.rpartition(":")
    if step.get("socks"):
        s = socket.create_connection(("127.0.0.1", 1080), TIMEOUT)
        s.settimeout(TIMEOUT)
        s.sendall(b"\x05\x01\x00")
        greet = s.recv(2)
        name = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + int(port).to_bytes(2, "big"))
        rep = b""
        while len(rep) < 10:
            d = s.recv(10 - len(rep))
            if not d:
                break
            rep += d
        res["socks"] = {"greeting": greet.hex(), "rep": rep[1] if len(rep) > 1 else None}
        return s if len(rep) > 1 and rep[1] == 0 else None
    s = socket.create_connection(("127.0.0.1", 3128), TIMEOUT)
    s.settimeout(TIMEOUT)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
    rd = Reader(s)
    res["connect"] = read_response(rd, head_method=True)
    st = res["connect"]["status"]
    if st != 200:
        # the body of a refusal
        hd = {k.lower(): v for k, v in res["connect"]["headers"]}
        if "content-length" in hd:
            res["connect"]["body"] = rd.exact(int(hd["content-length"])).decode("latin-1")
        return None
    assert rd.buf == b"", rd.buf
    return s


def do_tls(s, t, res, authority):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if t.get("verify", True):
        if t.get("cafile"):
            ctx.load_verify_locations(t["cafile"])
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if t.get("alpn"):
        ctx.set_alpn_protocols(t["alpn"])
    sni = t.get("sni", authority.rpartition(":")[0])
    try:
        ss = ctx.wrap_socket(s, server_hostname=sni)
    except ssl.SSLError as e:
        res["tls"] = {"ok": False, "error": str(e), "reason": e.reason,
                      "verify": getattr(e, "verify_message", None)}
        return None
    res["tls"] = {"ok": True, "alpn": ss.selected_alpn_protocol(), "version": ss.version(),
                  "cert": base64.b64encode(ss.getpeercert(binary_form=True)).decode()}
    return ss


def op_tunnel(step):
    res = {}
    s = open_tunnel(step, res)
    if s is None:
        return res, None
    authority = step["connect"]
    if "tls" in step:
        s = do_tls(s, step["tls"], res, authority)
        if s is None:
            return res, None
        rd = Reader(s)
        res["responses"] = []
        for q in step.get("reqs", []):
            try:
                s.sendall(build_request(q, authority))
                r = read_response(rd, head_method=q.get("method") == "HEAD")
            except (EOFError, OSError) as e:
                res["responses"].append({"error": str(e)})
                break
            res["responses"].append(r)
            if r["status"] == 101 and "ws" in q:
                s.sendall(q["ws"].encode())
                r["echo"] = rd.exact(len(q["ws"])).decode("latin-1")
        if step.get("end"):
            res["end"], _ = wait_end(s, TIMEOUT)
        return res, s
    if "send" in step:
        try:
            s.sendall(bytes.fromhex(step["send"]))
        except OSError as e:
            res["send_error"] = errno.errorcode.get(e.errno, str(e))
        if step.get("first_record"):
            # one TLS record of the answer, then hang up
            rd = Reader(s)
            try:
                hdr = rd.exact(5)
                res["received"] = (hdr + rd.exact(int.from_bytes(hdr[3:5], "big"))).hex()
            except (EOFError, OSError) as e:
                res["received"] = rd.buf.hex()
                res["error"] = str(e)
            s.close()
            return res, None
        res["end"], got = wait_end(s, TIMEOUT)
        res["received"] = got.hex()
        return res, None
    res["end"], got = wait_end(s, step.get("wait", TIMEOUT))
    res["received"] = got.hex()
    return res, None


def op_multi(op):
    keep, out = [], []
    for step in op["steps"]:
        if step.get("close_kept"):
            for s in keep:
                s.close()
            keep = []
        for attempt in range(step.get("retry_503", 1)):
            res, s = op_tunnel(step)
            if res.get("connect", {}).get("status") != 503:
                break
            time.sleep(0.05)
        res["attempts"] = attempt + 1
        out.append(res)
        if s is not None:
            if step.get("close"):
                s.close()
            else:
                keep.append(s)
    for s in keep:
        s.close()
    return out


def op_read(op):
    try:
        with open(op["path"], "rb") as f:
            return {"ok": f.read().decode("latin-1")}
    except OSError as e:
        return {"errno": errno.errorcode.get(e.errno, str(e.errno))}


def op_env(op):
    import os
    return {k: os.environ.get(k) for k in op["names"]}


def main():
    out = []
    for op in json.loads(sys.argv[1]):
        try:
            if op["op"] == "tunnel":
                out.append(op_tunnel(op)[0])
            elif op["op"] == "multi":
                out.append(op_multi(op))
            elif op["op"] == "read":
                out.append(op_read(op))
            elif op["op"] == "env":
                out.append(op_env(op))
            else:
                raise SystemExit("tls_probe: unknown op " + op["op"])
        except Exception as e:  # report, do not hide the other results
            out.append({"exception": "%s: %s" % (type(e).__name__, e)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
