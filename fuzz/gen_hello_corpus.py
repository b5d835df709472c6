#!/usr/bin/env python3
"""Write the seed corpus of fuzz_hello.c to fuzz/corpus/hello/.

Real ClientHellos from Python's ssl module (OpenSSL's client), and crafted
ones for the cases cordon must refuse or read carefully: ECH, malformed or
several server names, a hello split over records, a truncated one, bytes
after one. Run it again after changing a seed here; the files are checked in.
Inputs the fuzzer found (empty-records) are kept beside them by hand.
"""
import os
import ssl
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "hello")


def real(host, alpn=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if maxv:
        ctx.maximum_version = maxv
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = ctx.wrap_bio(i, o, server_hostname=host)
    try:
        s.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return o.read()


def ext(t, data):
    return struct.pack(">HH", t, len(data)) + data


def sni(*names, typ=0):
    body = b"".join(struct.pack(">BH", typ, len(n)) + n for n in names)
    return struct.pack(">H", len(body)) + body


def hello(exts, ciphers=b"\x13\x01\x00\x2f"):
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00"
    body += struct.pack(">H", len(ciphers)) + ciphers + b"\x01\x00"
    if exts is not None:
        e = b"".join(exts)
        body += struct.pack(">H", len(e)) + e
    return b"\x01" + struct.pack(">I", len(body))[1:] + body


def rec(hs, split=None):
    if split is None:
        return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
    return rec(hs[:split]) + rec(hs[split:])


v13 = ext(43, b"\x02\x03\x04")
groups = ext(10, b"\x00\x02\x00\x1d")
sigalgs = ext(13, b"\x00\x04\x04\x03\x08\x04")
ks = ext(51, struct.pack(">H", 36) + b"\x00\x1d\x00\x20" + b"\x42" * 32)
ech = ext(0xFE0D, b"\x00\x00\x01\x00\x01\x00" + b"\x00\x20" + b"\x33" * 32 + b"\x00\x10" + b"\x44" * 16)
base = [groups, sigalgs]
ok = rec(hello(base + [ext(0, sni(b"example.com"))]))

seeds = {
    "real-sni": real("api.anthropic.com"),
    "real-nosni": real(None),
    "real-alpn": real("example.com", ["h2", "http/1.1"]),
    "real-tls12": real("example.org", maxv=ssl.TLSVersion.TLSv1_2),
    "real-ip": real("127.0.0.1"),
    "sni": ok,
    "sni-tls13": rec(hello(base + [v13, ks, ext(0, sni(b"example.com"))])),
    "sni-two-names": rec(hello(base + [ext(0, sni(b"a.example", b"b.example"))])),
    "sni-space": rec(hello(base + [ext(0, sni(b"exa mple.com"))])),
    "sni-empty": rec(hello(base + [ext(0, sni(b""))])),
    "sni-type1": rec(hello(base + [ext(0, sni(b"example.com", typ=1))])),
    "sni-badlist": rec(hello(base + [ext(0, b"\x00\x09\x00\x00\x05abc")])),
    "sni-long": rec(hello(base + [ext(0, sni(b"a" * 300))])),
    "ech": rec(hello(base + [v13, ks, ext(0, sni(b"public.example")), ech])),
    "no-ext": rec(hello(None)),
    "split-records": rec(hello(base + [ext(0, sni(b"split.example"))]), split=20),
    "split-in-sni": rec(hello(base + [ext(0, sni(b"split.example"))]), split=70),
    "truncated": ok[:40],
    "trailing": ok + b"GET / HTTP/1.1\r\n",
    "dup-sni": rec(hello(base + [ext(0, sni(b"a.example")), ext(0, sni(b"b.example"))])),
    "not-hello": b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
    "alert": b"\x15\x03\x01\x00\x02\x02\x28",
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}

os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
