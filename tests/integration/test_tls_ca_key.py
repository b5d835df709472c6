"""The CA key of TLS interception never reaches the sandbox.

cordon's per-run CA key exists only in cordon's memory (OpenSSL's secure
heap); the supervisor is not dumpable while it holds it; a user-supplied
key file is added to denyRead. These tests look for the key from inside
with tls_keyscan.py (see its docstring for what "a matching key" means and
for the bound of the walk), check the scanner on the host where the key
is, and check dumpability from outside with a process of the same uid
that lacks CAP_SYS_PTRACE. Every test runs as root and as uid 65534.
"""
import base64
import json
import os
import signal
import subprocess

import pytest

import tls_lab
from tls_lab import PY, Tls, cert_info, first_pem_cert, signed_by

SCAN = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls_keyscan.py")).read()


@pytest.fixture(scope="module")
def lab():
    lb = tls_lab.Lab()
    yield lb
    lb.stop()


@pytest.fixture
def tls(sb, lab):
    return Tls(sb, lab)


def roots(sb):
    return ["/dev", "/tmp", "/etc", sb.ws, sb.home, "/run", "/var/tmp"]


def test_ca_private_key_is_nowhere_readable_inside(tls, sb):
    """Bound of the search (so that it stays well under a second): every
    regular file under /dev, /tmp, /etc, the workspace, HOME, /run and
    /var/tmp (the places a run's secrets could be put: cordon's own files
    in /dev, temporary and runtime files, configuration; /usr and the
    rest of the host are the read-only host image, which cordon does not
    write), 8 MiB of each; the environment; /proc/PID/environ, cmdline
    and maps of every process visible inside; and /proc/PID/mem of every
    process whose memory can be opened, every readable region (256 MiB at
    most each), with the BIGNUM scan in any region laid out like OpenSSL's
    secure heap. No private key matching the CA (first block of
    /dev/cordon-ca.pem) is found; the memory of the sandbox's init (PID 1,
    a fork of cordon) cannot be opened; the CA's public X coordinate shows
    up only in the scanner's own memory (it computed it).

    The scanner's control, in the same run: the test CA's key, put in the
    workspace as PEM and as DER, is found in both encodings."""
    planted = tls.pki.ca_key
    with open(planted, "rb") as f:
        sb.write("home/ws/planted.pem", f.read().decode())
    der = subprocess.run(["openssl", "pkey", "-in", planted, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    with open(sb.path("home/ws/planted.der"), "wb") as f:
        f.write(der)
    sb.own(sb.path("home/ws/planted.der"))
    script = ('%s -c "$SCAN" "$A" && echo && %s -c "$SCAN" "$B"' % (PY, PY))
    cfg_a = {"roots": roots(sb)}
    cfg_b = {"roots": [sb.ws], "mem": False, "ca": os.path.join(sb.ws, "test-ca.pem")}
    p = tls.sh(tls.settings(), script,
               env={"SCAN": SCAN, "A": json.dumps(cfg_a), "B": json.dumps(cfg_b)})
    assert p.returncode == 0, p.stderr
    a, b = (json.loads(x) for x in p.stdout.split("\n\n"))
    assert a["matches"] == [], a
    assert a["files"] > 100 and a["bytes"] > 1 << 20, a
    assert a["mem"]["1"] == "EACCES", a["mem"]
    assert a["mem"][a["self"]] == "OK" and a["mem_regions"] > 10, a
    assert all(h.startswith("/proc/%s/mem@" % a["self"]) for h in a["x_hits"]), a["x_hits"]
    # the scanner works: the planted test CA key is found as PEM and as DER
    assert sorted(m[1] for m in b["matches"]) == ["der", "pem"], b
    assert sorted(m[0] for m in b["matches"]) == [os.path.join(sb.ws, "planted.der"),
                                                  os.path.join(sb.ws, "planted.pem")], b


def start_held(tls, settings, prefix=()):
    """cordon running `cat` (held open on stdin) after printing /dev/cordon-ca.pem;
    returns (process, supervisor pid, init pid, CA file on the host). `prefix`
    goes before the command line (setpriv)."""
    tls.n += 1
    sb = tls.sb
    audit = sb.path("outside", "held-%d.jsonl" % tls.n)
    script = "cat /dev/cordon-ca.pem 2>/dev/null; echo READY; exec cat >/dev/null"
    args = (["-s", settings] if settings else []) + ["--audit", audit]
    p = subprocess.Popen(list(prefix) + sb.argv(args + ["--", "/bin/sh", "-c", script]),
                         cwd=sb.ws, env=sb.env(), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    ca = ""
    while True:
        line = p.stdout.readline()
        if not line or line.strip() == "READY":
            break
        ca += line
    assert line, p.stderr.read() if p.poll() is not None else "no READY"
    with open(audit) as f:
        init = json.loads(f.readline())["pid"]
    path = tls.sb.write("outside/held-ca-%d.pem" % tls.n, ca)
    return p, p.pid, init, path


def stop_held(p):
    err = ""
    try:
        _, err = p.communicate("", timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    for m in tls_lab.SANITIZER_MARKERS:
        assert m not in err, "sanitizer report:\n" + err
    assert p.returncode == 0, err


def host_scan(ca, pids):
    cfg = {"roots": [], "ca": ca, "pids": pids, "heaps_only": True}
    r = subprocess.run([PY, "-c", SCAN, json.dumps(cfg)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def need_host_root():
    if os.geteuid() != 0:
        pytest.skip("reading cordon's memory from the host needs root")


def test_scanner_finds_the_ca_key_in_the_supervisors_secure_heap(tls):
    """Control for the memory scan: run on the host as root against the
    supervisor, the scanner finds the CA key where cordon keeps it, as a
    BIGNUM in a region laid out like OpenSSL's secure heap."""
    need_host_root()
    p, sup, init, ca = start_held(tls, tls.settings())
    try:
        r = host_scan(ca, [sup])
    finally:
        stop_held(p)
    assert r["mem"] == {str(sup): "OK"}
    # (under ASan, some of its allocator's regions have the same layout)
    assert r["secure_heaps"] and r["matches"], r
    assert all(m[1] == "bignum" and any(m[0].startswith(h + "+") for h in r["secure_heaps"])
               for m in r["matches"]), r


def test_ca_key_is_only_in_the_supervisors_memory(tls):
    """Scanning the sandbox's init on the host (root) finds no CA key."""
    need_host_root()
    p, sup, init, ca = start_held(tls, tls.settings())
    try:
        r = host_scan(ca, [init])
    finally:
        stop_held(p)
    assert r["mem"] == {str(init): "OK"}
    assert r["matches"] == [], r


PROBE_MEM = r'''
import errno, json, sys
out = {}
for pid in sys.argv[1:]:
    try:
        open("/proc/%s/mem" % pid, "rb").close()
        out[pid] = "OK"
    except OSError as e:
        out[pid] = errno.errorcode[e.errno]
print(json.dumps(out))
'''


# For root: no CAP_SYS_PTRACE (dropped from the bounding set), for cordon
# and for the prober alike (a process with more capabilities than the
# prober could not be read anyway: commoncap's ptrace check).
NO_PTRACE = ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", "--"]


def test_supervisor_and_init_are_not_dumpable_while_the_ca_is_held(tls, sb):
    """With tlsTerminate, another process of the same uid without
    CAP_SYS_PTRACE cannot open /proc/PID/mem of the supervisor (EACCES),
    nor of the sandbox's init; and for a non-root run the supervisor's /proc
    files belong to root. Control: without tlsTerminate the same prober
    opens the supervisor's memory (it is dumpable then)."""
    if sb.user != "user" and os.geteuid() != 0:
        pytest.skip("a non-root caller has no CAP_SYS_PTRACE to drop")
    prefix = [] if sb.user == "user" else NO_PTRACE
    prober = sb.argv([])[:-1] if sb.user == "user" else NO_PTRACE
    held, sup, init, _ = start_held(tls, tls.settings(), prefix)
    plain, psup, _, _ = start_held(tls, sb.settings({}, name="plain.json"), prefix)
    try:
        r = subprocess.run(prober + [PY, "-c", PROBE_MEM, str(sup), str(init), str(psup)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        owner = os.stat("/proc/%d/mem" % sup).st_uid
        plain_owner = os.stat("/proc/%d/mem" % psup).st_uid
    finally:
        stop_held(held)
        stop_held(plain)
    assert got == {str(sup): "EACCES", str(init): "EACCES", str(psup): "OK"}, got
    if sb.user == "user":
        assert (owner, plain_owner) == (0, sb.uid)


def test_user_supplied_ca_is_used_and_its_key_is_unreadable_inside(tls, sb):
    """tlsTerminate.caCertPath/caKeyPath: leaves are issued by that CA (the
    first block of /dev/cordon-ca.pem), and the key file is denied inside
    (EACCES, added to denyRead, and deeper than the allowRead that makes its
    directory visible), by its path or another spelling of it; the
    certificate next to it stays readable."""
    d = sb.mkdir("home/my-ca", 0o700)
    cert, key = tls_lab.make_ca(d, "ca", "my own interception CA")
    for f in (cert, key):
        sb.own(f)
    os.chmod(key, 0o600)
    s = tls.settings(tls={"caCertPath": cert, "caKeyPath": key}, fs={"allowRead": [d]})
    ops = [{"op": "read", "path": key},
           {"op": "read", "path": os.path.join(sb.home, "my-ca", ".", "ca.key")},
           {"op": "read", "path": cert},
           {"op": "read", "path": tls_lab.CORDON_CA},
           {"op": "tunnel", "connect": tls.host, "tls": {"cafile": tls_lab.CORDON_CA},
            "reqs": [{"path": "/mine"}]}]
    out = tls.probe(s, ops)
    assert out[0] == {"errno": "EACCES"} and out[1] == {"errno": "EACCES"}, out[:2]
    with open(cert) as f:
        assert out[2] == {"ok": f.read()}
    mine = first_pem_cert(out[2]["ok"])
    assert first_pem_cert(out[3]["ok"]) == mine
    leaf = cert_info(base64.b64decode(out[4]["tls"]["cert"]))
    assert leaf["issuer"] == mine.subject.rfc4514_string() and signed_by(leaf["cert"], mine)
    assert leaf["sans"] == ["DNS:origin.test"] and leaf["key"] == ("EC", "secp256r1")
    tls.settle()
    assert out[4]["responses"][0]["body"] == "hello GET /mine\n", (out[4], tls.events(),
                                                                  tls.audit())
    p = sb.run("-s", s, "--print-policy")
    assert {"path": key, "literal": True} in json.loads(p.stdout)["filesystem"]["denyRead"]


def test_user_supplied_ca_key_named_through_a_symlink_is_unreadable_by_its_real_path(tls, sb):
    """caKeyPath may be a symlink (a dotfile manager's link): the key must
    stay unreadable inside by the link and by the real path."""
    d = sb.mkdir("home/keys", 0o700)
    cert, key = tls_lab.make_ca(d, "ca", "linked CA")
    for f in (cert, key):
        sb.own(f)
    os.chmod(key, 0o600)
    link = sb.path("home", "ws", "ca-link.key")  # in the workspace: visible inside
    os.symlink(key, link)
    if sb.user == "user":
        os.lchown(link, sb.uid, sb.gid)
    s = tls.settings(tls={"caCertPath": cert, "caKeyPath": link}, fs={"allowRead": [d]})
    out = tls.probe(s, [{"op": "read", "path": link}, {"op": "read", "path": key},
                        {"op": "tunnel", "connect": tls.host,
                         "tls": {"cafile": tls_lab.CORDON_CA}, "reqs": [{"path": "/l"}]}])
    assert out[0] == {"errno": "EACCES"} and out[1] == {"errno": "EACCES"}, out[:2]
    tls.settle()
    assert out[2]["responses"][0]["body"] == "hello GET /l\n", (out[2], tls.events(),
                                                               tls.audit())
