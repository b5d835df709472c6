"""Inside the sandbox: look for the private key of cordon's CA everywhere a
command can read, within a bound. Run as `python3 -c SOURCE JSON` with
{"roots": [...], "mem": true, "scalar_regions": "secure-heap"|"none"}, and
optionally "ca" (another CA file), "pids" (only these processes) and
"heaps_only" (read only the secure-heap-like regions): the tests also run
it on the host, as root, against cordon's own processes, to show that it
does find the key where the key is.

The CA certificate is the first block of /dev/cordon-ca.pem; a private key
"matches" when its public point is the CA's. A key is recognised in three
encodings, each checked by computing its public point:
  - PEM ("-----BEGIN ... PRIVATE KEY-----"), parsed with cryptography;
  - DER (SEC1 ECPrivateKey, alone or inside PKCS#8): the bytes
    02 01 01 04 20 followed by the 32-byte scalar;
  - OpenSSL's in-memory BIGNUM (four little-endian 64-bit limbs), only in
    the memory regions laid out like OpenSSL's secure heap (an anonymous
    read-write mapping of 256 KiB between two inaccessible guard pages,
    where cordon keeps its keys: CRYPTO_secure_malloc_init(256 KiB)).
Besides, any occurrence of the CA's raw public X coordinate is reported (a
DER key or certificate would carry it).

The walk: every regular file under the roots (no symlinks followed, the
first FILE_CAP bytes of each), then for every pid in /proc: environ,
cmdline and maps, and mem where it can be opened (every readable region of
maps, at most REGION_CAP bytes each). Errors are counted by errno, and every
/proc/PID/mem that cannot be opened is listed with its errno.
"""
import errno
import json
import os
import re
import stat
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

FILE_CAP = 8 << 20
REGION_CAP = 256 << 20
SECURE_HEAP = 256 * 1024
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 order

PEM_KEY = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.{0,16384}?-----END \1PRIVATE KEY-----", re.S)
DER_PREFIX = re.compile(rb"\x02\x01\x01\x04\x20")


def ca_point(path):
    with open(path, "rb") as f:
        text = f.read()
    end = b"-----END CERTIFICATE-----"
    cert = x509.load_pem_x509_certificate(text[:text.index(end) + len(end)])
    return cert.public_key().public_numbers()


class Scan:
    def __init__(self, q):
        self.q = q
        self.x = q.x.to_bytes(32, "big")
        self.files = 0
        self.bytes = 0
        self.pem_keys = 0
        self.der_candidates = 0
        self.scalars_tested = 0
        self.matches = []
        self.x_hits = []
        self.errors = {}
        self.mem = {}
        self.secure_heaps = []
        self.mem_regions = 0
        self.heaps_only = False

    def err(self, e):
        name = errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else \
            type(e).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def is_ca(self, d):
        if not 0 < d < N:
            return False
        self.scalars_tested += 1
        pub = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
        return pub.x == self.q.x and pub.y == self.q.y

    def blob(self, where, data):
        self.bytes += len(data)
        if b"PRIVATE KEY-----" in data:
            for m in PEM_KEY.finditer(data):
                self.pem_keys += 1
                try:
                    k = serialization.load_pem_private_key(m.group(0), None)
                except Exception:
                    continue  # encrypted or not a key cordon could use
                if isinstance(k, ec.EllipticCurvePrivateKey) and \
                        k.public_key().public_numbers() == self.q:
                    self.matches.append([where, "pem"])
        for m in DER_PREFIX.finditer(data):
            d = data[m.end():m.end() + 32]
            if len(d) == 32:
                self.der_candidates += 1
                if self.is_ca(int.from_bytes(d, "big")):
                    self.matches.append([where, "der"])
        if self.x in data:
            self.x_hits.append(where)

    def bignums(self, where, data):
        """The scalar as OpenSSL's BIGNUM keeps it: 4 little-endian limbs,
        8-byte aligned. Windows with more than 4 zero bytes are skipped (a
        random scalar has that few with probability below 1e-6)."""
        for off in range(0, len(data) - 31, 8):
            w = data[off:off + 32]
            if w.count(0) > 4:
                continue
            if self.is_ca(int.from_bytes(w, "little")):
                self.matches.append([where + "+%#x" % off, "bignum"])

    def walk(self, root):
        for dirpath, dirnames, filenames in os.walk(root, onerror=self.err):
            if dirpath.startswith(("/proc", "/sys")):
                dirnames[:] = []
                continue
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    with open(p, "rb") as f:
                        data = f.read(FILE_CAP)
                except OSError as e:
                    self.err(e)
                    continue
                self.files += 1
                self.blob(p, data)

    def proc(self, pid, mem, scalar_regions):
        base = "/proc/%s/" % pid
        for name in ("environ", "cmdline", "maps"):
            try:
                with open(base + name, "rb") as f:
                    self.blob(base + name, f.read())
            except OSError as e:
                self.err(e)
        if not mem:
            return
        try:
            fd = os.open(base + "mem", os.O_RDONLY)
        except OSError as e:
            self.mem[pid] = errno.errorcode.get(e.errno, str(e.errno))
            return
        self.mem[pid] = "OK"
        try:
            with open(base + "maps") as f:
                maps = [ln.split() for ln in f.read().splitlines()]
        except OSError as e:
            self.err(e)
            os.close(fd)
            return
        regions = []
        for m in maps:
            lo, hi = (int(v, 16) for v in m[0].split("-"))
            regions.append((lo, hi, m[1], m[5] if len(m) > 5 else ""))
        for i, (lo, hi, perms, path) in enumerate(regions):
            if not perms.startswith("r") or path in ("[vvar]", "[vvar_vclock]", "[vsyscall]"):
                continue
            heap_like = (hi - lo == SECURE_HEAP and not path and perms.startswith("rw") and
                         0 < i < len(regions) - 1 and
                         regions[i - 1][1] == lo and regions[i - 1][2].startswith("---") and
                         regions[i + 1][0] == hi and regions[i + 1][2].startswith("---"))
            if self.heaps_only and not heap_like:
                continue
            try:
                data = os.pread(fd, min(hi - lo, REGION_CAP), lo)
            except OSError as e:
                self.err(e)
                continue
            self.mem_regions += 1
            where = "%smem@%x" % (base, lo)
            self.blob(where, data)
            if heap_like:
                self.secure_heaps.append(where)
                if scalar_regions == "secure-heap":
                    self.bignums(where, data)
        os.close(fd)


def main():
    cfg = json.loads(sys.argv[1])
    s = Scan(ca_point(cfg.get("ca", "/dev/cordon-ca.pem")))
    s.heaps_only = cfg.get("heaps_only", False)
    for root in cfg["roots"]:
        s.walk(root)
    for k, v in os.environ.items():
        s.blob("env:" + k, v.encode(errors="surrogateescape"))
    me = str(os.getpid())
    pids = cfg.get("pids") or sorted((d for d in os.listdir("/proc") if d.isdigit()), key=int)
    pids = [str(p) for p in pids]
    for pid in pids:
        s.proc(pid, cfg.get("mem", True), cfg.get("scalar_regions", "secure-heap"))
    print(json.dumps({"files": s.files, "bytes": s.bytes, "pem_keys": s.pem_keys,
                      "der_candidates": s.der_candidates, "scalars_tested": s.scalars_tested,
                      "matches": s.matches, "x_hits": s.x_hits, "errors": s.errors,
                      "mem": s.mem, "self": me, "pids": pids, "secure_heaps": s.secure_heaps,
                      "mem_regions": s.mem_regions}))


if __name__ == "__main__":
    main()
