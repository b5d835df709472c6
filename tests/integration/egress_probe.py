"""The client side of the egress tests, run inside the sandbox as
`python3 -c SOURCE JSON` (the sandbox's /tmp is private, so the source
travels on the command line). It talks to cordon's listeners byte by byte,
so that a test controls exactly what the proxy receives, and prints one JSON
list of results.

Operations (each a dict with "op"):
  http    one connection to the HTTP proxy (127.0.0.1:3128 unless "proxy"),
          "reqs": a list of requests, each {"raw": text} sent verbatim, or
          {"method", "target", "headers": [[k, v]], "body_gen": N,
          "body": text, "chunked": bool, "chunk": n, "expect100": bool};
          "mode": "seq" (send one, read its answer, then the next),
          "pipeline" (send all, then read all) or "raw" (send, then read
          everything until the peer closes). Answers carry status, reason,
          headers, body length and sha256, the first bytes of the body, and
          whether the proxy closed the connection afterwards.
  socks   SOCKS5 to 127.0.0.1:1080: "atyp" 1 (IPv4), 3 (name) or 4 (IPv6),
          "host", "port"; then "send" text through the tunnel and read the
          answer ("read": "http" or "echo").
  tunnel  CONNECT through the HTTP proxy, then echo bytes or speak TLS to
          the origin (see op_tunnel).
  connect a direct TCP connect ignoring the proxy: "host", "port"; the
          result is "OK" or the errno name.
  script  several named connections driven step by step (op_script): to
          the HTTP proxy, through a CONNECT or SOCKS5 tunnel, optionally
          with TLS inside (trusting a CA file); sends, reads of responses
          or raw bytes, pauses and half-closes in any order, so that a test
          can interleave connections or send a body slowly.
"""
import errno
import hashlib
import json
import random
import socket
import sys

TIMEOUT = 20  # a bound on waiting, never a timing assertion


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
        except socket.timeout:
            raise
        except ConnectionResetError:
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

    def closed_after(self):
        """Does the peer close the connection after the last answer (rather
        than send more)? Waits for the close; a timeout counts as "no"."""
        if self.buf:
            return False
        try:
            return not self.fill()
        except socket.timeout:
            return False


def read_head(r):
    status_line = r.line().decode("latin-1")
    headers = []
    while True:
        ln = r.line()
        if not ln:
            break
        k, _, v = ln.decode("latin-1").partition(":")
        headers.append([k, v.strip()])
    parts = status_line.split(" ", 2)
    return status_line, int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def hget(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def read_response(r, head_method=False):
    interim = []
    while True:
        line, status, reason, headers = read_head(r)
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            continue
        break
    body = b""
    te = (hget(headers, "transfer-encoding") or "").lower()
    cl = hget(headers, "content-length")
    if head_method or status in (204, 304) or status == 101:
        pass
    elif te == "chunked":
        parts = []
        while True:
            size = int(r.line().split(b";")[0], 16)
            if size == 0:
                while r.line():
                    pass
                break
            parts.append(r.exact(size))
            r.exact(2)
        body = b"".join(parts)
    elif cl is not None:
        body = r.exact(int(cl))
    else:
        body = r.rest()
    return {"line": line, "status": status, "reason": reason, "headers": headers,
            "interim": interim, "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body": body[:4000].decode("latin-1")}


def build(req):
    if "raw" in req:
        return req["raw"].encode("latin-1"), b""
    body = b""
    if "body_gen" in req:
        body = det_bytes(req["body_gen"])
    elif "body" in req:
        body = req["body"].encode("latin-1")
    lines = ["%s %s HTTP/1.1" % (req.get("method", "GET"), req["target"])]
    lines += ["%s: %s" % (k, v) for k, v in req.get("headers", [])]
    has_body = "body_gen" in req or "body" in req
    if has_body and req.get("chunked"):
        lines.append("Transfer-Encoding: chunked")
        n = req.get("chunk", 65536)
        parts = [b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
                 for i in range(0, len(body), n)]
        body = b"".join(parts) + b"0\r\n\r\n"
    elif has_body:
        lines.append("Content-Length: %d" % len(body))
    if req.get("expect100"):
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body


def op_http(o):
    host, port = o.get("proxy", ["127.0.0.1", 3128])
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    r = Reader(s)
    mode = o.get("mode", "seq")
    out = []
    reqs = o["reqs"]
    heads = [x.get("method", "GET") == "HEAD" or x.get("raw", "").startswith("HEAD ")
             for x in reqs]
    try:
        if mode == "raw":
            for q in reqs:
                h, b = build(q)
                s.sendall(h + b)
            if o.get("shutdown"):
                s.shutdown(socket.SHUT_WR)
            timed_out = False
            try:
                data = r.rest()
            except socket.timeout:
                data, timed_out = r.buf, True
            res = {"raw": data.decode("latin-1"), "timed_out": timed_out}
            try:
                r2 = Reader(None)
                r2.buf, r2.eof = data, True
                res.update(read_response(r2, heads[0]))
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                res["parse_error"] = repr(e)
            return [res]
        if mode == "pipeline":
            s.sendall(b"".join(h + b for h, b in map(build, reqs)))
            for i in range(len(reqs)):
                out.append(read_response(r, heads[i]))
        else:
            for i, q in enumerate(reqs):
                h, b = build(q)
                if q.get("expect100"):
                    s.sendall(h)
                    line, status, reason, headers = read_head(r)
                    if status != 100:
                        raise RuntimeError("expected 100 Continue, got " + line)
                    s.sendall(b)
                    res = read_response(r, heads[i])
                    res["interim"] = [100] + res["interim"]
                else:
                    s.sendall(h + b)
                    res = read_response(r, heads[i])
                out.append(res)
        if out and o.get("check_close"):
            out[-1]["closed_after"] = r.closed_after()
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        out.append({"error": repr(e), "partial": r.buf[:2000].decode("latin-1")})
    finally:
        s.close()
    return out


def op_socks(o):
    s = socket.create_connection(("127.0.0.1", o.get("proxy_port", 1080)), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    r = Reader(s)
    res = {}
    try:
        s.sendall(b"\x05\x01\x00")
        res["method"] = r.exact(2).hex()
        atyp = o["atyp"]
        if atyp == 1:
            addr = socket.inet_pton(socket.AF_INET, o["host"])
        elif atyp == 4:
            addr = socket.inet_pton(socket.AF_INET6, o["host"])
        else:
            name = o["host"].encode("utf-8")
            addr = bytes([len(name)]) + name
        s.sendall(b"\x05\x01\x00" + bytes([atyp]) + addr + o["port"].to_bytes(2, "big"))
        head = r.exact(4)
        res["rep"] = head[1]
        if not r.buf and r.eof:
            return res
        bt = head[3]
        n = {1: 4, 4: 16}.get(bt)
        if n is None:
            n = r.exact(1)[0]
        r.exact(n + 2)
        if head[1] != 0:
            if o.get("check_close"):
                res["closed_after"] = r.closed_after()
            return res
        if "send" in o:
            s.sendall(o["send"].encode("latin-1"))
            if o.get("read") == "http":
                res["response"] = read_response(r)
            else:
                s.shutdown(socket.SHUT_WR)
                res["data"] = r.rest().decode("latin-1")
    except EOFError as e:
        res["eof"] = str(e)
    except Exception as e:  # noqa: BLE001
        res["error"] = repr(e)
    finally:
        s.close()
    return res


def op_tunnel(o):
    """CONNECT o["authority"] (raw request text in o["raw"] if given); on 200,
    either echo o["send"] through the tunnel (half-closing after it) or make
    a TLS connection (o["tls"]: {"sni", "cafile", "path"}) and GET a path."""
    s = socket.create_connection(("127.0.0.1", 3128), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    r = Reader(s)
    res = {}
    try:
        raw = o.get("raw") or "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (
            o["authority"], o["authority"])
        s.sendall(raw.encode("latin-1"))
        line, status, reason, headers = read_head(r)
        res.update(line=line, status=status, reason=reason, headers=headers)
        if status != 200:
            cl = hget(headers, "content-length")
            body = r.exact(int(cl)) if cl is not None else r.rest()
            res["body"] = body.decode("latin-1")
            if o.get("check_close"):
                res["closed_after"] = r.closed_after()
            return res
        if "send" in o:
            s.sendall(o["send"].encode("latin-1"))
            s.shutdown(socket.SHUT_WR)
            res["data"] = r.rest().decode("latin-1")
        elif "send_gen" in o:
            import threading
            data = det_bytes(o["send_gen"])

            def sender():
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            t = threading.Thread(target=sender)
            t.start()
            got = r.rest()
            t.join()
            res["data_len"] = len(got)
            res["data_sha256"] = hashlib.sha256(got).hexdigest()
            res["data_start"] = got[:64].decode("latin-1")
        elif "tls" in o:
            import ssl
            t = o["tls"]
            ctx = ssl.create_default_context(cafile=t["cafile"])
            assert not r.buf
            ts = ctx.wrap_socket(s, server_hostname=t["sni"])
            host = t.get("host", t["sni"])
            ts.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                        % (t["path"], host)).encode())
            res["response"] = read_response(Reader(ts))
    except EOFError as e:
        res["eof"] = str(e)
    except Exception as e:  # noqa: BLE001
        res["error"] = repr(e)
    finally:
        s.close()
    return res


def op_connect(o):
    try:
        s = socket.create_connection((o["host"], o["port"]), timeout=TIMEOUT)
        s.close()
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))


class _TlsSock:
    """An SSL socket whose recv reports an unclean TLS end as EOF (as the
    Reader expects of a plain socket)."""

    def __init__(self, ss):
        self.ss = ss

    def recv(self, n):
        import ssl
        try:
            return self.ss.recv(n)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as e:
            if "EOF" in str(e) or "closed" in str(e).lower():
                return b""
            raise

    def sendall(self, b):
        return self.ss.sendall(b)

    def shutdown(self, how):
        return self.ss.shutdown(how)

    def settimeout(self, t):
        return self.ss.settimeout(t)

    def close(self):
        return self.ss.close()


def _script_open(st):
    """Open one connection of op_script. Returns (socket or None, result)."""
    res = {"ok": False}
    if "socks" in st:
        host, port = st["socks"]
        s = socket.create_connection(("127.0.0.1", 1080), timeout=TIMEOUT)
        s.settimeout(TIMEOUT)
        r = Reader(s)
        name = host.encode()
        s.sendall(b"\x05\x01\x00")
        res["method"] = r.exact(2).hex()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
        try:
            head = r.exact(10)
        except EOFError:
            head = r.buf
        res["rep"] = head[1] if len(head) > 1 else None
        if res["rep"] != 0:
            res["closed_after"] = r.closed_after()
            s.close()
            return None, res
    else:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=TIMEOUT)
        s.settimeout(TIMEOUT)
    if "connect" in st:
        a = st["connect"]
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (a, a)).encode("latin-1"))
        r = Reader(s)
        line, status, reason, headers = read_head(r)
        res.update(line=line, status=status, reason=reason, headers=headers)
        if status != 200:
            cl = hget(headers, "content-length")
            body = r.exact(int(cl)) if cl is not None else r.rest()
            res["body"] = body.decode("latin-1")
            res["closed_after"] = r.closed_after()
            s.close()
            return None, res
        if r.buf:
            res["extra"] = r.buf.decode("latin-1")
            s.close()
            return None, res
    if "tls" in st:
        import ssl
        t = st["tls"]
        ctx = ssl.create_default_context(cafile=t.get("cafile", "/dev/cordon-ca.pem"))
        try:
            s = _TlsSock(ctx.wrap_socket(s, server_hostname=t["sni"]))
        except (ssl.SSLError, OSError) as e:
            res["tls_error"] = str(e)
            s.close()
            return None, res
    res["ok"] = True
    return s, res


def op_script(o):
    """o["steps"]: a list of {"do": ..., "c": NAME, ...}; one result per step.
      open     {"c", "connect": "host:port"?, "socks": [host, port]?,
                "tls": {"sni", "cafile"}?}: a connection to the proxy (then a
               CONNECT or SOCKS5 tunnel, then TLS when asked)
      send     {"c", "data": latin-1 text, "times"?: n (data repeated)}: errors
               are reported, not raised
      read     {"c", "head": bool}: one HTTP response (as op_http's)
      recv     {"c", "n"}: exactly n raw bytes (or what came before EOF)
      rest     {"c", "timeout"?}: everything until the peer closes
      shutdown {"c"}: half-close (SHUT_WR); close {"c"}; sleep {"s"}"""
    conns, readers, out = {}, {}, []
    try:
        for st in o["steps"]:
            do, name = st["do"], st.get("c", "a")
            res = None
            try:
                if do == "open":
                    s, res = _script_open(st)
                    if s is not None:
                        conns[name], readers[name] = s, Reader(s)
                elif do == "send":
                    try:
                        conns[name].sendall(st["data"].encode("latin-1") *
                                            st.get("times", 1))
                        res = {"ok": True}
                    except OSError as e:
                        res = {"ok": False, "error": errno.errorcode.get(e.errno, str(e))}
                elif do == "read":
                    res = read_response(readers[name], st.get("head", False))
                elif do == "recv":
                    r = readers[name]
                    try:
                        res = {"data": r.exact(st["n"]).decode("latin-1")}
                    except EOFError:
                        res = {"data": r.buf.decode("latin-1"), "eof": True}
                        r.buf = b""
                elif do == "rest":
                    conns[name].settimeout(st.get("timeout", TIMEOUT))
                    r = readers[name]
                    try:
                        res = {"data": r.rest().decode("latin-1"), "timed_out": False}
                    except socket.timeout:
                        res = {"data": r.buf.decode("latin-1"), "timed_out": True}
                elif do == "shutdown":
                    conns[name].shutdown(socket.SHUT_WR)
                elif do == "close":
                    conns.pop(name).close()
                elif do == "sleep":
                    import time
                    time.sleep(st["s"])
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                res = {"error": repr(e)}
            out.append(res)
    finally:
        for s in conns.values():
            s.close()
    return out


def main():
    ops = json.loads(sys.argv[1])
    out = []
    for o in ops:
        fn = {"http": op_http, "socks": op_socks, "connect": op_connect,
              "tunnel": op_tunnel, "script": op_script}[o["op"]]
        out.append(fn(o))
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
