"""Clients that run inside the sandbox for test_load.py and test_faults.py
(python3 -c SOURCE SCENARIO JSON_ARGS): the few-connection scenarios where
the behaviour of each connection matters more than the count. Every socket
has a timeout; every result is printed as one JSON line.

  slow       trickling heads, clients that never read, requests to an
             upstream that never answers, CONNECTs to one that never
             accepts, while a normal client keeps sending requests; prints
             "started", then "timeouts JSON" once the proxy has timed the
             tricklers and the hung connects out, waits for a line on stdin,
             closes the rest, prints "closed JSON" and waits for a line
  halfclose  FINs both ways through CONNECT, SOCKS5 and plain HTTP
  upstream   answers to every kind of broken upstream, then a normal request
  request    one GET through the proxy: status and body (fault tests)
  outage     a request and a direct connection per phase the host sets up
             (the proxy out of descriptors, stopped, back)
  flood      as many idle connections to the proxy as the sandbox can open,
             a request meanwhile, and one after they are gone
  exhaust    descriptors, then memory, run out inside the sandbox
"""
import fcntl
import hashlib
import json
import os
import selectors
import socket
import struct
import sys
import termios
import threading
import time

PROXY = ("127.0.0.1", 3128)
SOCKS = ("127.0.0.1", 1080)


def http_get(port, path, extra=""):
    return ("GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
            % (port, path, port, extra)).encode()


def connect_proxy(timeout=10):
    s = socket.create_connection(PROXY, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s, limit=1 << 31):
    """Bytes until EOF: (data, how) with how "eof", "reset" or "timeout"."""
    out = bytearray()
    while len(out) < limit:
        try:
            d = s.recv(1 << 16)
        except socket.timeout:
            return bytes(out), "timeout"
        except ConnectionResetError:
            return bytes(out), "reset"
        if not d:
            return bytes(out), "eof"
        out += d
    return bytes(out), "limit"


def parse_head(data):
    """(status, {lower-case name: value}, head length) of a response."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None, {}, 0
    lines = data[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, end + 4


def read_response(s):
    """One Content-Length response from s: (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("EOF before the head: %r" % buf[:200])
        buf += d
    status, hdrs, hl = parse_head(buf)
    n = int(hdrs.get("content-length", "0"))
    body = buf[hl:]
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            raise EOFError("EOF in the body")
        body += d
    return status, hdrs, body[:n], body[n:]


def get(port, path, timeout=10):
    t0 = time.monotonic()
    s = connect_proxy(timeout)
    try:
        s.sendall(http_get(port, path))
        status, hdrs, body, _ = read_response(s)
    finally:
        s.close()
    return status, body, time.monotonic() - t0


# ---- slow clients -------------------------------------------------------------

def slow(a):
    print("ready", flush=True)
    sys.stdin.readline()
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    trick, noread, stall, hung = [], [], [], []
    for i in range(a["trickle"]):
        s = connect_proxy()
        s.setblocking(False)
        s.send(b"GET http://127.0.0.1:%d/echo/trickle%d HTTP/1.1\r\nX-Slow: " % (a["http"], i))
        c = {"s": s, "t": time.monotonic(), "got": b"", "answered": None, "sent": 0}
        trick.append(c)
        sel.register(s, selectors.EVENT_READ, ("trickle", c))
    for i in range(a["noread"]):
        s = connect_proxy()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(http_get(a["http"], "/size/%d" % a["noread_bytes"]))
        noread.append(s)
    for i in range(a["stall"]):
        s = connect_proxy()
        s.sendall(http_get(a["http"], "/stall"))
        stall.append(s)
    for i in range(a["hung"]):
        s = connect_proxy()
        s.setblocking(False)
        s.send(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                % (a["blackhole"], a["blackhole"])).encode())
        c = {"s": s, "t": time.monotonic(), "got": b"", "answered": None}
        hung.append(c)
        sel.register(s, selectors.EVENT_READ, ("hung", c))
    print("started", flush=True)
    lat, errors, n = [], [], 0
    next_trickle = time.monotonic() + 1
    deadline = t0 + a["deadline"]
    while time.monotonic() < deadline:
        if all(c["answered"] for c in trick) and all(c["answered"] for c in hung) and \
                time.monotonic() - t0 >= a.get("at_least", 0):
            break
        # a normal client: a fresh connection each time, every 20 ms
        try:
            status, body, dt = get(a["http"], "/echo/n%d" % n)
            if status != 200 or body != b"n%d\n" % n:
                errors.append("request %d: %s %r" % (n, status, body[:80]))
            lat.append(dt)
        except OSError as e:
            errors.append("request %d: %r" % (n, e))
        n += 1
        now = time.monotonic()
        if now >= next_trickle:
            for c in trick:
                if not c["answered"]:
                    try:
                        c["s"].send(b"a", socket.MSG_NOSIGNAL)
                        c["sent"] += 1
                    except OSError:
                        pass
            next_trickle = now + 1
        for key, _ in sel.select(timeout=0.02):
            kind, c = key.data
            try:
                d = key.fileobj.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                d = b""
                c["err"] = repr(e)
            c["got"] += d
            if (b"\r\n\r\n" in c["got"] or not d) and not c["answered"]:
                status, hdrs, _ = parse_head(c["got"])
                c["answered"] = {"status": status, "after": time.monotonic() - c["t"],
                                 "error": hdrs.get("x-proxy-error"), "eof": not d}
            if not d:
                sel.unregister(key.fileobj)
    lat.sort()
    res = {
        "trickle": [c["answered"] for c in trick],
        "trickle_bytes": [c["sent"] for c in trick],
        "hung": [c["answered"] for c in hung],
        "normal": {"n": len(lat), "errors": errors[:20], "nerrors": len(errors),
                   "p50": lat[len(lat) // 2] if lat else None,
                   "p99": lat[int(len(lat) * 0.99)] if lat else None,
                   "max": lat[-1] if lat else None},
        "elapsed": time.monotonic() - t0,
    }
    print("timeouts " + json.dumps(res), flush=True)
    sys.stdin.readline()
    for c in trick + hung:
        c["s"].close()
    # What the never-read clients had been sent (the proxy held the rest
    # back); closed unread, as a client that gives up does: a reset.
    held = []
    for s in noread:
        held.append(struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0" * 4))[0])
        s.close()
    for s in stall:
        s.close()
    print("closed " + json.dumps({"noread_received": held}), flush=True)
    sys.stdin.readline()


# ---- half-close ---------------------------------------------------------------------

class Refused(Exception):
    """The proxy answered a CONNECT with another status than 200."""

    def __init__(self, head):
        super().__init__(head)
        self.status = int(head.split(b" ", 2)[1])


def tunnel(port):
    s = connect_proxy()
    s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
               % (port, port)).encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        d = s.recv(1)
        if not d:
            raise EOFError("proxy closed: %r" % head)
        head += d
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        raise Refused(head)
    return s


def socks(port):
    s = socket.create_connection(SOCKS, timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port))
    rep = b""
    while len(rep) < 10:
        d = s.recv(10 - len(rep))
        if not d:
            raise EOFError("SOCKS reply cut")
        rep += d
    assert rep[1] == 0, rep
    return s


def echo_roundtrip(s, data):
    """Send data and a FIN from a thread while reading: the whole echo and
    then the upstream's FIN must come back."""
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    got, how = read_all(s)
    t.join(10)
    s.close()
    return {"sent": len(data), "got": len(got), "same": got == data, "end": how}


def halfclose(a):
    res = {}
    data = os.urandom(300000)
    res["connect_echo"] = echo_roundtrip(tunnel(a["echo"]), data)
    res["socks_echo"] = echo_roundtrip(socks(a["echo"]), data[:100000])
    # The upstream's FIN comes first: what the client sends after it must
    # still arrive, then the client's FIN ends the tunnel.
    s = tunnel(a["finfirst"])
    hello, how = read_all(s)
    late = bytes(range(256)) * 800
    s.sendall(late)
    s.shutdown(socket.SHUT_WR)
    rest, how2 = read_all(s)
    s.close()
    res["finfirst"] = {"hello": hello.decode("latin-1"), "end": how, "after": len(rest),
                       "end2": how2, "sent_after_fin": len(late),
                       "fnv": fnv1a64(late)}
    # plain HTTP: the request, then at once the client's FIN; the whole
    # answer must still come, then the proxy's FIN
    s = connect_proxy()
    s.sendall(http_get(a["http"], "/size/%d" % a["size"]))
    s.shutdown(socket.SHUT_WR)
    got, how = read_all(s)
    s.close()
    status, hdrs, hl = parse_head(got)
    res["http_fin_after_request"] = {"status": status, "length": len(got) - hl,
                                     "sha256": hashlib.sha256(got[hl:]).hexdigest(),
                                     "end": how}
    # two pipelined requests, then the FIN: both answers, then EOF
    s = connect_proxy()
    s.sendall(http_get(a["http"], "/echo/p1") + http_get(a["http"], "/echo/p2"))
    s.shutdown(socket.SHUT_WR)
    got, how = read_all(s)
    s.close()
    res["pipelined_then_fin"] = {"bodies": [b.decode() for b in split_bodies(got)],
                                 "end": how}
    print(json.dumps(res), flush=True)


def split_bodies(data):
    out = []
    while data:
        status, hdrs, hl = parse_head(data)
        if status is None:
            break
        n = int(hdrs.get("content-length", "0"))
        out.append(data[hl:hl + n])
        data = data[hl + n:]
    return out


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & ((1 << 64) - 1)
    return "%016x" % h


# ---- broken upstreams ---------------------------------------------------------------

def upstream(a):
    print("ready", flush=True)
    sys.stdin.readline()
    res = {}
    for path in a["paths"]:
        t0 = time.monotonic()
        s = connect_proxy(timeout=a.get("timeout", 10))
        s.sendall(http_get(a["http"], path))
        got, how = read_all(s)
        s.close()
        status, hdrs, hl = parse_head(got)
        res[path] = {"status": status, "error": hdrs.get("x-proxy-error"),
                     "length": hdrs.get("content-length"), "body": len(got) - hl if hl else 0,
                     "chunked": hdrs.get("transfer-encoding") == "chunked",
                     "end": how, "seconds": round(time.monotonic() - t0, 3)}
    # A tunnel to an upstream that resets at once: the reset comes before
    # the proxy saw its connect succeed (502) or after (200, then the end).
    t0 = time.monotonic()
    try:
        s = tunnel(a["reset"])
        status = 200
        try:
            s.sendall(b"x" * 1000)
        except OSError:
            pass
        got, how = read_all(s)
        s.close()
    except Refused as e:
        status, got, how = e.status, b"", "answered"
    res["connect-reset"] = {"status": status, "got": len(got), "end": how,
                            "seconds": round(time.monotonic() - t0, 3)}
    status, body, _ = get(a["http"], "/echo/after")
    res["after"] = {"status": status, "body": body.decode()}
    print(json.dumps(res), flush=True)
    sys.stdin.readline()


def attempt(a, tag):
    """A request through the proxy and, when a["direct"] names one, a
    direct connection to the host's address (captured by the sandbox's
    nftables to the proxy): what each got, or the exception's name."""
    r = {}
    try:
        status, body, _ = get(a["http"], "/echo/" + tag, timeout=a["timeout"])
        r["proxy"] = status
    except (OSError, EOFError) as e:
        r["proxy"] = type(e).__name__
    if a.get("direct"):
        try:
            s = socket.create_connection(tuple(a["direct"]), timeout=a["timeout"])
            s.sendall(b"ping\n")
            r["direct"] = s.recv(100).decode(errors="replace")
            s.close()
        except OSError as e:
            r["direct"] = type(e).__name__
    return r


def outage(a):
    """One attempt per phase, each when the host says (a line on stdin)."""
    print("ready", flush=True)
    for phase in a["phases"]:
        sys.stdin.readline()
        print(json.dumps(dict(attempt(a, phase), phase=phase)), flush=True)
    sys.stdin.readline()


def flood(a):
    """cordon-load flood holds as many idle connections to the proxy as the
    sandbox's descriptors allow; meanwhile a request; then they go, and a
    request must be served again."""
    import subprocess
    print("ready", flush=True)
    sys.stdin.readline()
    p = subprocess.Popen([a["tool"], "flood", "-n", str(a["n"])], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    held = int(p.stdout.readline().split()[1])
    print("held %d" % held, flush=True)
    sys.stdin.readline()
    during = attempt(dict(a, timeout=2), "during")
    print("during", flush=True)
    sys.stdin.readline()
    p.stdin.write("go\n")
    p.stdin.flush()
    released = p.stdout.readline().split()
    p.wait(30)
    deadline = time.monotonic() + 30
    while True:
        after = attempt(dict(a, timeout=5), "after")
        if after["proxy"] == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print("result " + json.dumps({"held": held, "during": during, "released": released,
                                  "after": after}), flush=True)
    sys.stdin.readline()


def exhaust(a):
    """Descriptors and memory run out inside the sandbox (limits.nofile,
    limits.as): the command sees EMFILE and MemoryError, and the network
    works again once it lets go."""
    import errno
    res = {"before": attempt(a, "before")}
    fds = []
    try:
        while len(fds) < 1000000:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        res["open"] = errno.errorcode[e.errno]
    res["opened"] = len(fds)
    try:
        socket.socket().close()
        res["socket"] = "OK"
    except OSError as e:
        res["socket"] = errno.errorcode[e.errno]
    res["during"] = attempt(a, "during")
    for fd in fds:
        os.close(fd)
    res["after_fds"] = attempt(a, "after-fds")
    try:
        b = bytearray(a["alloc"])
        res["alloc"] = len(b)
        del b
    except MemoryError:
        res["alloc"] = "MemoryError"
    res["after_memory"] = attempt(a, "after-memory")
    print(json.dumps(res), flush=True)


def request(a):
    try:
        status, body, dt = get(a["http"], a.get("path", "/echo/ok"), timeout=a.get("timeout", 10))
        print(json.dumps({"status": status, "body": body.decode("latin-1"), "seconds": dt}))
    except (OSError, EOFError) as e:
        print(json.dumps({"error": type(e).__name__, "detail": str(e)}))


if __name__ == "__main__":
    {"slow": slow, "halfclose": halfclose, "upstream": upstream, "request": request,
     "outage": outage, "flood": flood, "exhaust": exhaust}[sys.argv[1]](json.loads(sys.argv[2]))
