"""Denials and live updates (issue 13): every denial arrives on the audit
stream with the fields README "Audit records" lists, the exit summary and
srt's <sandbox_violations> block show them, ignoreViolations hides lines
from both (never from the audit), and --control-fd changes the network
rules while the command runs.

Each test runs cordon as root and as uid 65534 (the `sb` fixture). The
harness's tree lives under the host's /tmp, which the sandbox replaces by a
private tmpfs, so the settings list sb.base under allowRead: the tree is
then visible read-only and a write to sb.outside is "a write outside the
write roots" (EROFS). Network cases run in the egress lab (egress_lab.py;
root only, as the other egress tests).

What the code does, as these tests pin it down (src/sandbox/observe.c,
src/harden/seccomp.c, src/audit/audit.c, src/cli/main.c, src/sandbox/run.c):
  - a write-intent syscall is judged by the mount its object (or, for a
    name that does not exist, the directory that would hold it) lies on: a
    read-only mount makes an fs.deny record with op (the syscall's name as
    libseccomp spells it), path (absolute, normalised), rule and pid (the
    caller's pid on the host); nothing else is in the record;
  - rule is "protected: NAME" (the last component of the protected path),
    then "denyRead", "denyWrite", else "not in allowWrite";
  - refused syscalls are answered by the listener: syscall.deny with
    syscall, nr, errno (EPERM; ENOSYS for clone3) and pid; socket() and
    socketpair() of AF_UNIX are recorded but never summarised;
  - the summary counts network, write, syscall and other denials in that
    order, names the first of each category, adds ", ..." when there are
    more, and ends with "see the audit stream" when an audit stream is
    open (--audit or --audit-fd), else "run with --audit FILE for every
    record"; the block keeps at most 1000 lines, then "... and N more";
  - policy.update records: allow with line, allowedDomains, deniedDomains;
    deny with line and reason; a refused line is never in the summary.
cordon runs here through run_cordon(), not Sandbox.run(), so that stderr
(with the summary) is checked whole. Bugs found are strict xfails whose
reason names the function at fault.
"""
import json
import os
import platform
import re
import shutil
import signal
import subprocess

import pytest

from conftest import CORDON_BIN, SANITIZER_MARKERS
from helpers import PY, own_tree, wait_for

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="syscall numbers below are x86_64's")

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FS_KEYS = {"v", "ts", "event", "verdict", "op", "path", "rule", "pid"}
SYS_KEYS = {"v", "ts", "event", "verdict", "syscall", "nr", "errno", "pid"}
NOT_IN = "not in allowWrite"
NOT_LISTED = "host is not on the allow list"
DENY_LIST = "host is on the deny list"
NO_ALLOW = "the request matches no allow rule for this host (requestRules[0])"
SEE = "; see the audit stream\n"
RUN_WITH = "; run with --audit FILE for every record\n"
LIVE_ONLY = ("which cannot change while the command runs (only network.allowedDomains, "
             "deniedDomains, deniedDomainReasons, deniedResolvedAddresses, strictAllowlist "
             "and defaultPorts can)")

O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND = 0o1, 0o2, 0o100, 0o1000, 0o2000
AT_FDCWD = -100

# Raw syscalls from python (ctypes), so that the op a record names does not
# depend on which syscall libc picks: argv[1] is a JSON list of steps
# [nr, arg...]; a string argument is a path, {"dir": P} a descriptor of
# directory P, {"how": FLAGS, "mode": M} a struct open_how. Prints the errno
# name of each step ("OK" on success).
SYSPROBE = r'''
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fds, keep = {}, []
def arg(a):
    if isinstance(a, str):
        return ctypes.c_char_p(a.encode())
    if isinstance(a, dict) and "dir" in a:
        if a["dir"] not in fds:
            fds[a["dir"]] = os.open(a["dir"], os.O_RDONLY | os.O_DIRECTORY)
        return ctypes.c_long(fds[a["dir"]])
    if isinstance(a, dict) and "how" in a:
        how = (ctypes.c_uint64 * 3)(a["how"], a.get("mode", 0), 0)
        keep.append(how)
        return ctypes.byref(how)
    if a is None:
        return ctypes.c_void_p(None)
    return ctypes.c_long(a)
out = []
for step in json.loads(sys.argv[1]):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(step[0]), *[arg(a) for a in step[1:]])
    e = ctypes.get_errno()
    if r >= 0 and step[0] in (2, 85, 257, 437, 425, 321):
        os.close(r)
    out.append("OK" if r >= 0 else errno.errorcode.get(e, str(e)))
print(json.dumps(out))
'''


# ---------------------------------------------------------------------------
# helpers

def read_audit(path, complete=True):
    """The records in an audit file, each checked for the common fields.
    complete: the run has ended (run.start first, run.exit last)."""
    recs = []
    try:
        with open(path) as f:
            data = f.read()
    except FileNotFoundError:
        return recs
    for line in data.split("\n")[:-1]:   # only whole lines
        r = json.loads(line)
        assert r["v"] == 1, r
        assert TS_RE.match(r["ts"]), r
        assert r["verdict"] in ("allow", "deny"), r
        recs.append(r)
    if complete:
        assert recs and recs[0]["event"] == "run.start", recs
        assert recs[-1]["event"] == "run.exit", recs
        assert [r["event"] for r in recs].count("run.exit") == 1
    return recs


def events(recs, event):
    return [r for r in recs if r["event"] == event]


def fs_fields(recs):
    return [(r["op"], r["path"], r["rule"]) for r in events(recs, "fs.deny")]


def sys_fields(recs):
    return [(r["syscall"], r["nr"], r["errno"]) for r in events(recs, "syscall.deny")]


def no_sanitizer(text):
    for m in SANITIZER_MARKERS:
        assert m not in text, "sanitizer report:\n" + text


def run_cordon(sb, args, lab=None, timeout=60, **kw):
    """cordon ARGS as the sandbox's user (in the egress lab's network when
    lab is given), stderr whole: the exit summary is what these tests check,
    so they do not go through Sandbox.run, which may set it apart."""
    argv = sb.argv(args)
    if lab:
        if lab.proc.poll() is not None:
            raise RuntimeError("the egress lab is gone")
        argv = lab.argv(argv)
    p = subprocess.run(argv, cwd=sb.ws, env=sb.env(), capture_output=True, text=True,
                       timeout=timeout, **kw)
    no_sanitizer(p.stderr)
    return p


class World:
    """Settings over the test's tree: the tree readable, the workspace the
    only write root, outside/ holding files a command may not change."""

    def __init__(self, sb):
        self.sb = sb
        self.ws = sb.ws
        self.out = sb.outside
        sb.write("outside/pub.txt", "public\n")
        sb.write("outside/secret.txt", "SECRET-FILE\n")
        sb.write("outside/closed/c.txt", "SECRET-C\n")
        sb.mkdir("outside/empty")
        sb.write("home/ws/mine.txt", "mine\n")
        own_tree(sb, sb.outside)
        sb.mkdir("logs")    # the caller's own: cordon opens its audit file there
        self.n = 0
        self.audit_path = None

    def settings(self, extra=None, fs_extra=None, net=None):
        fs = {"allowRead": [self.sb.base], "allowWrite": [self.ws],
              "denyRead": [self.out + "/secret.txt", self.out + "/closed"]}
        fs.update(fs_extra or {})
        doc = {"network": net or {"allowedDomains": [], "deniedDomains": []}, "filesystem": fs}
        doc.update(extra or {})
        self.n += 1
        return self.sb.settings(doc, name="violations-%d.json" % self.n), doc

    def audit_file(self):
        self.n += 1
        self.audit_path = self.sb.path("logs", "audit-%d.jsonl" % self.n)
        return self.audit_path

    def run(self, settings, *cmd, opts=(), audit=True, **kw):
        args = ["-s", settings]
        if audit:
            args += ["--audit", self.audit_file()]
        return run_cordon(self.sb, args + list(opts) + ["--"] + list(cmd), **kw)

    def sh(self, settings, script, opts=(), audit=True, **kw):
        return self.run(settings, "/bin/sh", "-c", script, opts=opts, audit=audit, **kw)

    def syscalls(self, settings, steps, opts=()):
        p = self.run(settings, PY, "-c", SYSPROBE, json.dumps(steps), opts=opts)
        assert p.returncode == 0, "rc=%d\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
        return json.loads(p.stdout.strip().splitlines()[-1]), p

    def audit(self):
        return read_audit(self.audit_path)


@pytest.fixture
def w(sb):
    return World(sb)


def lab_settings(lab, allow=(), deny=(), rules=None):
    net = {"allowedDomains": list(allow), "deniedDomains": list(deny),
           "dnsServers": ["127.0.0.1:%d" % lab.ports["dns"]]}
    if rules is not None:
        net["requestRules"] = rules
    return net


def lab_run(w, lab, settings, script, opts=(), audit=True, **kw):
    """/bin/sh -c SCRIPT inside cordon, with the egress lab as the network."""
    args = ["-s", settings]
    if audit:
        args += ["--audit", w.audit_file()]
    return run_cordon(w.sb, args + list(opts) + ["--", "/bin/sh", "-c", script], lab=lab, **kw)


def curl(url, *extra):
    """A curl through the sandbox's proxy variables; prints the status code
    (000 when the proxy refused a tunnel)."""
    return "curl -s -o /dev/null -w '%%{http_code}\\n' --max-time 20 %s '%s'" % (
        " ".join(extra), url)


# ---------------------------------------------------------------------------
# 1. writes outside the write roots: one fs.deny record per refused syscall

def test_every_write_intent_syscall_outside_the_write_roots_is_recorded(w):
    s, _ = w.settings()
    o = w.out
    d = {"dir": o}
    rel = os.path.relpath(o, w.ws) + "/d3"   # ../../outside/d3 from the cwd
    steps = [
        ([257, AT_FDCWD, o + "/new1", O_WRONLY | O_CREAT | O_TRUNC, 0o644], "openat", o + "/new1"),
        ([2, o + "/pub.txt", O_WRONLY | O_APPEND], "open", o + "/pub.txt"),
        ([85, o + "/new2", 0o644], "creat", o + "/new2"),
        ([437, d, "new3", {"how": O_WRONLY | O_CREAT, "mode": 0o644}, 24], "openat2",
         o + "/new3"),
        ([83, o + "/d1", 0o755], "mkdir", o + "/d1"),
        ([258, d, "d2", 0o755], "mkdirat", o + "/d2"),
        ([83, rel, 0o755], "mkdir", o + "/d3"),
        ([84, o + "/empty"], "rmdir", o + "/empty"),
        ([87, o + "/pub.txt"], "unlink", o + "/pub.txt"),
        ([263, d, "pub.txt", 0], "unlinkat", o + "/pub.txt"),
        ([82, o + "/pub.txt", o + "/p2"], "rename", o + "/pub.txt"),
        ([316, d, "pub.txt", d, "p3", 0], "renameat2", o + "/pub.txt"),
        ([86, o + "/pub.txt", o + "/h1"], "link", o + "/h1"),
        ([265, AT_FDCWD, o + "/pub.txt", d, "h2", 0], "linkat", o + "/h2"),
        ([88, "target", o + "/l1"], "symlink", o + "/l1"),
        ([266, "target", d, "l2"], "symlinkat", o + "/l2"),
        ([90, o + "/pub.txt", 0o600], "chmod", o + "/pub.txt"),
        ([268, d, "pub.txt", 0o600], "fchmodat", o + "/pub.txt"),
        ([92, o + "/pub.txt", -1, -1], "chown", o + "/pub.txt"),
        ([94, o + "/pub.txt", -1, -1], "lchown", o + "/pub.txt"),
        ([260, d, "pub.txt", -1, -1, 0], "fchownat", o + "/pub.txt"),
        ([76, o + "/pub.txt", 0], "truncate", o + "/pub.txt"),
        ([133, o + "/fifo1", 0o10600, 0], "mknod", o + "/fifo1"),
        ([259, d, "fifo2", 0o10600, 0], "mknodat", o + "/fifo2"),
    ]
    res, p = w.syscalls(s, [st[0] for st in steps])
    # The kernel still refuses each one: the listener only observes.
    assert res == ["EROFS"] * len(steps)
    recs = w.audit()
    assert fs_fields(recs) == [(op, path, NOT_IN) for _, op, path in steps]
    start = recs[0]
    pids = set()
    for r in events(recs, "fs.deny"):
        assert set(r) == FS_KEYS, r
        assert r["verdict"] == "deny"
        pids.add(r["pid"])
    # One python process made them all: one host pid, not the sandbox's init.
    assert len(pids) == 1 and pids != {start["pid"]} and min(pids) > 1, (pids, start)
    assert [r["event"] for r in recs] == ["run.start"] + ["fs.deny"] * len(steps) + ["run.exit"]
    # Nothing outside changed.
    assert sorted(os.listdir(o)) == ["closed", "empty", "pub.txt", "secret.txt"]
    assert p.stderr == "cordon: blocked %d writes (%s/new1 (not in allowWrite), ...)%s" % (
        len(steps), o, SEE)


def test_write_from_real_tools_outside_and_under_deny_write(w):
    s, _ = w.settings(fs_extra={"denyWrite": [w.ws + "/locked"]})
    w.sb.mkdir("home/ws/locked")
    p = w.sh(s, 'echo x > "%s/x.txt"; echo y >> /etc/cordon-probe; mkdir locked/sub; '
             'touch locked/f; exit 0' % w.out)
    assert p.returncode == 0
    assert fs_fields(w.audit()) == [("openat", w.out + "/x.txt", NOT_IN),
                                    ("openat", "/etc/cordon-probe", NOT_IN),
                                    ("mkdir", w.ws + "/locked/sub", "denyWrite"),
                                    ("openat", w.ws + "/locked/f", "denyWrite")]
    assert "Read-only file system" in p.stderr


def test_fs_deny_pid_is_the_callers_pid_on_the_host(w):
    """The record's pid names the process on the host: its NSpid ends with
    the pid the command sees inside."""
    s, _ = w.settings()
    audit = w.audit_file()
    script = ('import ctypes, os, sys, time\n'
              'try:\n    open(sys.argv[1] + "/x", "w")\nexcept OSError:\n    pass\n'
              'ctypes.CDLL(None).unshare(0x10000000)\n'
              'open("pid.tmp", "w").write(str(os.getpid())); os.rename("pid.tmp", "pid")\n'
              'while not os.path.exists("go"):\n    time.sleep(0.01)\n')
    p = w.sb.popen("-s", s, "--audit", audit, "--", PY, "-c", script, w.out,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   start_new_session=True)
    try:
        assert wait_for(lambda: os.path.exists(os.path.join(w.ws, "pid")), 20)
        inner = int(open(os.path.join(w.ws, "pid")).read())
        recs = wait_for(lambda: [r for r in read_audit(audit, complete=False)
                                 if r["event"] in ("fs.deny", "syscall.deny")], 10)
        assert [r["event"] for r in recs] == ["fs.deny", "syscall.deny"], recs
        assert recs[0]["pid"] == recs[1]["pid"]
        with open("/proc/%d/status" % recs[0]["pid"]) as f:
            nspid = [ln.split()[1:] for ln in f if ln.startswith("NSpid:")][0]
        assert len(nspid) >= 2 and int(nspid[-1]) == inner, (nspid, inner)
        open(os.path.join(w.ws, "go"), "w").close()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    no_sanitizer(err)
    assert p.returncode == 0, err


# ---------------------------------------------------------------------------
# 2. protected names in a repository workspace

def git_repo(w):
    subprocess.run(["git", "init", "-q", w.ws], check=True, capture_output=True)
    own_tree(w.sb, w.ws)


def test_protected_name_creation_is_recorded_with_its_rule(w):
    git_repo(w)
    s, _ = w.settings()
    ws = w.ws
    p = w.sh(s, 'touch .bashrc; echo "#!/bin/sh" > .git/hooks/pre-commit; echo x >> .git/config; '
             'echo y > .envrc; rm -f .bashrc; mkdir .claude; exit 0')
    assert p.returncode == 0
    assert "touch: cannot touch '.bashrc': Read-only file system" in p.stderr
    assert "cannot create .git/hooks/pre-commit: Read-only file system" in p.stderr
    assert "rm: cannot remove '.bashrc': Device or resource busy" in p.stderr
    recs = w.audit()
    got = fs_fields(recs)
    assert [(op, path) for op, path, _ in got] == [
        ("openat", ws + "/.bashrc"),
        ("openat", ws + "/.git/hooks/pre-commit"),
        ("openat", ws + "/.git/config"),
        ("openat", ws + "/.envrc"),
        ("unlinkat", ws + "/.bashrc"),
        ("mkdir", ws + "/.claude"),
    ]
    rules = [r for _, _, r in got]
    assert rules[0] == rules[4] == "protected: .bashrc"
    assert rules[3] == "protected: .envrc"
    assert rules[5] == "protected: .claude"
    assert all(r.startswith("protected: ") for r in rules), rules
    for r in events(recs, "fs.deny"):
        assert set(r) == FS_KEYS, r
    # Nothing planted on the host.
    assert not os.path.exists(ws + "/.git/hooks/pre-commit")
    assert "x\n" not in open(ws + "/.git/config").read()


def test_protected_rule_names_the_entry_as_the_readme_lists_it(w):
    git_repo(w)
    s, _ = w.settings()
    w.sh(s, 'echo > .git/hooks/pre-commit; echo x >> .git/config; exit 0')
    assert fs_fields(w.audit()) == [
        ("openat", w.ws + "/.git/hooks/pre-commit", "protected: .git/hooks"),
        ("openat", w.ws + "/.git/config", "protected: .git/config")]


def test_creating_a_name_that_exists_is_not_a_denial(w):
    git_repo(w)
    s, _ = w.settings()
    p = w.sh(s, 'mkdir -p .git/hooks && mkdir -p "$PWD/a/b" /etc && '
             'python3 -c "import os; os.close(os.open(\'/etc/passwd\', os.O_RDONLY | os.O_CREAT))"')
    assert p.returncode == 0, p.stderr
    assert fs_fields(w.audit()) == []
    assert p.stderr == ""


def test_removal_is_judged_by_the_directory_of_a_mount_root(w):
    """A name that is not a mount's root lies on its directory's mount, so
    its removal is judged by its own (one lookup); a mount's root (the write
    root itself, a protected name) by both."""
    s, _ = w.settings()
    ws = w.ws
    w.sb.write("home/ws/a", "a\n")
    steps = [
        ([82, ws + "/a", ws + "/b"], "OK"),
        ([316, AT_FDCWD, "b", AT_FDCWD, "mine.txt", 0], "OK"),   # onto an existing name
        ([87, "mine.txt"], "OK"),
        ([84, ws], "EROFS"),
        ([82, ws, ws + "2"], "EROFS"),
    ]
    res, _ = w.syscalls(s, [st[0] for st in steps])
    assert res == [st[1] for st in steps]
    assert fs_fields(w.audit()) == [("rmdir", ws, NOT_IN), ("rename", ws, NOT_IN)]


def test_what_the_kernel_refuses_for_another_reason_is_no_denial(w):
    """Outside the write roots, calls that fail before the mount is asked
    (or that a read-only mount allows) make no record: a directory opened
    for writing (EISDIR), a symlink opened with O_NOFOLLOW (ELOOP), a FIFO
    (writable on a read-only mount), truncate of a directory or a FIFO, ".",
    ".." and "/" as the name made or removed, and a rename between two mounts
    (EXDEV). The same calls on a file, or within one mount, are recorded."""
    s, _ = w.settings()
    o, ws = w.out, w.ws
    O_NOFOLLOW = 0o400000
    os.mkfifo(o + "/fifo")
    os.chmod(o + "/fifo", 0o666)
    os.symlink("pub.txt", o + "/lnk")
    steps = [
        ([257, AT_FDCWD, o + "/fifo", O_RDWR], "OK"),
        ([257, AT_FDCWD, o + "/empty", O_WRONLY], "EISDIR"),
        ([257, AT_FDCWD, o + "/empty", O_TRUNC], "EISDIR"),
        ([257, AT_FDCWD, o + "/empty", O_WRONLY | O_CREAT, 0o644], "EISDIR"),
        ([257, AT_FDCWD, o + "/lnk", O_WRONLY | O_NOFOLLOW], "ELOOP"),
        ([76, o + "/empty", 0], "EISDIR"),
        ([76, o + "/fifo", 0], "EINVAL"),
        ([83, o + "/..", 0o755], "EEXIST"),
        ([83, "/", 0o755], "EEXIST"),
        ([84, o + "/empty/."], "EINVAL"),
        ([84, o + "/empty/.."], "ENOTEMPTY"),
        ([87, o + "/."], "EISDIR"),
        ([82, o + "/empty/.", o + "/x"], "EBUSY"),
        ([82, o + "/pub.txt", ws + "/x"], "EXDEV"),
        ([82, ws + "/mine.txt", o + "/x"], "EXDEV"),
        # refused by the mount, recorded:
        ([257, AT_FDCWD, o + "/lnk", O_WRONLY], "EROFS"),
        ([76, o + "/pub.txt", 0], "EROFS"),
        ([82, o + "/pub.txt", o + "/x"], "EROFS"),
        ([84, o + "/empty"], "EROFS"),
    ]
    res, _ = w.syscalls(s, [st[0] for st in steps])
    assert res == [st[1] for st in steps]
    recs = events(w.audit(), "fs.deny")
    assert [(r["op"], r["path"], r.get("target")) for r in recs] == [
        ("openat", o + "/lnk", o + "/pub.txt"), ("truncate", o + "/pub.txt", None),
        ("rename", o + "/pub.txt", None), ("rmdir", o + "/empty", None)]


# ---------------------------------------------------------------------------
# 3. reads of denied paths: recorded only with a write-intent flag

def test_write_intent_open_of_a_denied_file_is_recorded_and_a_plain_read_is_not(w):
    s, _ = w.settings()
    f, c = w.out + "/secret.txt", w.out + "/closed/c.txt"
    steps = [
        [257, AT_FDCWD, f, 0],                     # O_RDONLY: not recorded
        [257, AT_FDCWD, c, 0],
        [257, AT_FDCWD, f, O_RDWR],
        [257, AT_FDCWD, c, O_RDWR],
        [257, AT_FDCWD, f, O_WRONLY | O_APPEND],
        [2, c, O_WRONLY | O_APPEND],
        [2, f, 0],                                 # open(O_RDONLY): not recorded
    ]
    res, p = w.syscalls(s, steps)
    assert res == ["EACCES"] * len(steps)
    recs = w.audit()
    assert fs_fields(recs) == [("openat", f, "denyRead"), ("openat", c, "denyRead"),
                               ("openat", f, "denyRead"), ("open", c, "denyRead")]
    for r in events(recs, "fs.deny"):
        assert set(r) == FS_KEYS, r
    assert "SECRET" not in p.stdout + p.stderr
    # cat, a plain read: EACCES, no record and no summary.
    p = w.run(s, "/bin/sh", "-c", 'cat "$1" "$2"; echo "rc=$?"', "sh", f, c)
    assert p.stdout == "rc=1\n"
    assert p.stderr == "cat: %s: Permission denied\ncat: %s: Permission denied\n" % (f, c)
    assert [r["event"] for r in w.audit()] == ["run.start", "run.exit"]


def test_read_only_openat2_is_not_recorded(w):
    s, _ = w.settings()
    res, p = w.syscalls(s, [[437, AT_FDCWD, "/etc/passwd", {"how": 0}, 24],
                            [437, AT_FDCWD, w.out + "/secret.txt", {"how": 0}, 24]])
    assert res == ["OK", "EACCES"]
    assert fs_fields(w.audit()) == []
    assert p.stderr == ""


# openat2(2) with a struct open_how of SIZE bytes (FLAGS, MODE, RESOLVE,
# then zeros, with byte POKE set to 1 when given), or openat(2) when SIZE is
# 0. Prints the errno name of each call.
OPEN_PROBE = r'''
import ctypes, errno, json, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = []
for path, flags, mode, resolve, size, poke in json.loads(sys.argv[1]):
    ctypes.set_errno(0)
    if size:
        buf = ctypes.create_string_buffer(max(size, 24))
        struct.pack_into("QQQ", buf, 0, flags, mode, resolve)
        if poke is not None:
            buf[poke] = b"\x01"
        r = libc.syscall(ctypes.c_long(437), ctypes.c_long(-100), ctypes.c_char_p(path.encode()),
                         buf, ctypes.c_size_t(size))
    else:
        r = libc.syscall(ctypes.c_long(257), ctypes.c_long(-100), ctypes.c_char_p(path.encode()),
                         ctypes.c_long(flags), ctypes.c_long(mode))
    out.append("OK" if r >= 0 else errno.errorcode[ctypes.get_errno()])
print(json.dumps(out))
'''


def test_openat2_the_kernel_refuses_before_the_lookup_is_not_a_denial(w):
    """openat2 checks its struct before it looks at the path: a size below
    the first version (EINVAL), above a page (E2BIG), non-zero bytes past
    the struct (E2BIG), unknown flags, resolve bits or a stray mode
    (EINVAL), RESOLVE_CACHED with O_TRUNC (EAGAIN). None of those is a
    write the mounts refused; nor is an O_PATH open, which writes nothing.
    The listener once read the first 24 bytes and judged the rest."""
    s, _ = w.settings()
    f = w.out + "/pub.txt"
    O_DIRECTORY, O_PATH, O_TMPFILE = 0o200000, 0o10000000, 0o20200000
    FMODE_NONOTIFY = 1 << 26
    steps = [
        ((f, O_WRONLY, 0, 0, 8192, None), "E2BIG"),
        ((f, O_WRONLY, 0, 0, 8192, 100), "E2BIG"),
        ((f, O_WRONLY, 0, 0, 4096, 4000), "E2BIG"),
        ((f, O_WRONLY, 0, 0, 32, 24), "E2BIG"),
        ((f, O_WRONLY, 0, 0, 16, None), "EINVAL"),
        ((f, O_WRONLY | FMODE_NONOTIFY, 0, 0, 24, None), "EINVAL"),
        ((f, O_WRONLY, 0, 0x40, 24, None), "EINVAL"),
        ((f, O_WRONLY, 0o644, 0, 24, None), "EINVAL"),
        ((f, O_WRONLY | O_PATH, 0, 0, 24, None), "EINVAL"),
        ((f, O_WRONLY, 0, 0x08 | 0x10, 24, None), "EINVAL"),   # BENEATH | IN_ROOT
        ((f, O_WRONLY | O_TRUNC, 0, 0x20, 24, None), "EAGAIN"),  # RESOLVE_CACHED
        ((w.out + "/nd", O_WRONLY | O_CREAT | O_DIRECTORY, 0o755, 0, 24, None), "EINVAL"),
        ((w.out, O_TMPFILE, 0o600, 0, 24, None), "EINVAL"),       # O_TMPFILE read-only
        ((f, O_WRONLY | O_TRUNC | O_PATH, 0, 0, 0, None), "OK"),  # openat: O_PATH only
        # What the kernel does attempt, and the mounts refuse:
        ((f, O_WRONLY, 0, 0, 4096, None), "EROFS"),
        ((f, O_WRONLY, 0, 0, 32, None), "EROFS"),
        ((w.out, O_TMPFILE | O_WRONLY, 0o600, 0, 24, None), "EROFS"),
    ]
    p = w.run(s, PY, "-c", OPEN_PROBE, json.dumps([st[0] for st in steps]))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [st[1] for st in steps]
    assert fs_fields(w.audit()) == [("openat2", f, NOT_IN), ("openat2", f, NOT_IN),
                                    ("openat2", w.out, NOT_IN)]
    assert open(f).read() == "public\n"


# ---------------------------------------------------------------------------
# 4. refused syscalls

def test_refused_syscalls_are_recorded_with_nr_errno_and_pid(w):
    s, _ = w.settings()
    steps = [
        ([272, 0x10000000], ("unshare", 272, "EPERM")),            # unshare(CLONE_NEWUSER)
        ([165, "none", "/mnt", "tmpfs", 0, None], ("mount", 165, "EPERM")),
        ([425, 4, None], ("io_uring_setup", 425, "EPERM")),
        ([435, None, 0], ("clone3", 435, "ENOSYS")),
        ([321, 0, None, 0], ("bpf", 321, "EPERM")),
        ([101, 0, 0, 0, 0], ("ptrace", 101, "EPERM")),              # PTRACE_TRACEME
        ([250, 0, 0], ("keyctl", 250, "EPERM")),
        ([166, "/proc", 0], ("umount2", 166, "EPERM")),
    ]
    res, p = w.syscalls(s, [st[0] for st in steps])
    assert res == [st[1][2] for st in steps]
    recs = w.audit()
    assert sys_fields(recs) == [st[1] for st in steps]
    pids = {r["pid"] for r in events(recs, "syscall.deny")}
    assert len(pids) == 1 and pids != {recs[0]["pid"]}
    for r in events(recs, "syscall.deny"):
        assert set(r) == SYS_KEYS, r
        assert r["verdict"] == "deny"
    assert fs_fields(recs) == []
    assert p.stderr == "cordon: blocked %d refused syscalls (unshare (EPERM), ...)%s" % (
        len(steps), SEE)


def test_unshare_tool_and_io_uring_probe_are_recorded(w):
    s, _ = w.settings()
    p = w.sh(s, 'unshare -U true; echo "rc=$?"')
    assert p.stdout == "rc=1\n"
    assert "unshare: unshare failed: Operation not permitted" in p.stderr
    assert sys_fields(w.audit()) == [("unshare", 272, "EPERM")]
    assert p.stderr.endswith("cordon: blocked 1 refused syscall (unshare (EPERM))" + SEE)
    # The escape suite's probe (built next to cordon): an io_uring ring,
    # TIOCSTI, TIOCSETD and TIOCEXCL, each refused and seen.
    built = os.path.join(os.path.dirname(os.path.abspath(CORDON_BIN)), "tests", "escape",
                         "escape-probe")
    if not os.access(built, os.X_OK):
        pytest.skip("escape-probe is not built next to CORDON_BIN")
    probe = os.path.join(w.sb.base, "bin", "escape-probe")
    shutil.copy2(built, probe)
    os.chmod(probe, 0o755)
    p = w.run(s, probe, "io_uring-openat", "/etc/hostname")
    assert p.stdout == "RESULT BLOCKED EPERM io_uring_setup\n"
    assert sys_fields(w.audit()) == [("io_uring_setup", 425, "EPERM")]
    for cls in ("tiocsti", "tiocsetd", "tiocexcl"):
        p = w.run(s, probe, cls)
        assert p.stdout == "RESULT BLOCKED EPERM\n"
        assert sys_fields(w.audit()) == [("ioctl", 16, "EPERM")]
        assert p.stderr == "cordon: blocked 1 refused syscall (ioctl (EPERM))" + SEE


def test_unix_socket_probes_are_recorded_but_not_summarised(w):
    s, _ = w.settings()
    script = ("import socket\nfor f in (lambda: socket.socket(socket.AF_UNIX),\n"
              "          lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)):\n"
              "    try:\n        f(); print('OK')\n"
              "    except OSError as e:\n        print(e.errno)\n")
    for opts in ((), ("--violations-block",)):
        p = w.run(s, PY, "-c", script, opts=opts)
        assert p.stdout == "1\n1\n"
        assert sys_fields(w.audit()) == [("socket", 41, "EPERM"), ("socketpair", 53, "EPERM")]
        assert p.stderr == ""


# ---------------------------------------------------------------------------
# 5. network denials (egress lab)

def test_network_denials_are_recorded(w, egress_lab):
    rules = [{"host": "allowed.test", "allow": ["GET /ok"]}]
    s, _ = w.settings(net=lab_settings(egress_lab, allow=["allowed.test"], deny=["denied.test"],
                                       rules=rules))
    script = "; ".join([
        curl("http://evil.test/x"),
        curl("https://evil.test/"),
        curl("http://evil.test:8080/", "--socks5-hostname 127.0.0.1:1080"),
        curl("http://denied.test/"),
        curl("http://allowed.test/v1/files", "-X POST -d x"),
        curl("http://allowed.test/ok"),
    ])
    p = lab_run(w, egress_lab, s, script, opts=("--violations-block",))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["403", "000", "000", "403", "403", "200"]
    recs = w.audit()
    den = [r for r in recs if r["verdict"] == "deny" and r["event"].startswith("net.")]
    assert [(r["event"], r["host"], r["port"], r.get("via"), r.get("rule"), r["reason"])
            for r in den] == [
        ("net.connect", "evil.test", 80, "http", None, NOT_LISTED),
        ("net.connect", "evil.test", 443, "connect", None, NOT_LISTED),
        ("net.connect", "evil.test", 8080, "socks", None, NOT_LISTED),
        ("net.connect", "denied.test", 80, "http", "denied.test", DENY_LIST),
        ("net.request", "allowed.test", 80, None, "requestRules[0]", NO_ALLOW),
    ]
    q = den[4]
    assert (q["method"], q["path"], q["status"]) == ("POST", "/v1/files", 403)
    for r in den[:4]:
        assert "address" not in r, r   # refused before any resolution
    assert p.stderr == (
        "<sandbox_violations>\n"
        "deny network-outbound evil.test:80 (%s)\n"
        "deny network-outbound evil.test:443 (%s)\n"
        "deny network-outbound evil.test:8080 (%s)\n"
        "deny network-outbound denied.test:80 (%s)\n"
        "deny http-request POST allowed.test:80/v1/files (%s)\n"
        "</sandbox_violations>\n" % (NOT_LISTED, NOT_LISTED, NOT_LISTED, DENY_LIST, NO_ALLOW))


# ---------------------------------------------------------------------------
# 6. the exit summary

def test_summary_singular_forms_with_audit(w):
    s, _ = w.settings()
    p = w.sh(s, 'echo x > "%s/one"; unshare -U true; exit 0' % w.out)
    lines = p.stderr.splitlines(True)
    assert lines[-1] == ("cordon: blocked 1 write (%s/one (not in allowWrite)) and 1 refused "
                         "syscall (unshare (EPERM))%s" % (w.out, SEE))
    assert sum(ln.startswith("cordon: ") for ln in lines) == 1


def test_summary_plural_three_categories_without_audit(w, egress_lab):
    s, _ = w.settings(net=lab_settings(egress_lab))
    o = w.out
    script = ('exec 2>/dev/null; %s; %s; echo > %s/a; echo > %s/b; '
              'unshare -U true; unshare -n true; exit 0'
              % (curl("http://evil.test/"), curl("http://other.test:8080/"), o, o))
    p = lab_run(w, egress_lab, s, script, audit=False)
    assert p.returncode == 0
    assert p.stderr == ("cordon: blocked 2 network requests (evil.test:80 (%s), ...), 2 writes "
                        "(%s/a (not in allowWrite), ...) and 2 refused syscalls (unshare "
                        "(EPERM), ...)%s" % (NOT_LISTED, o, RUN_WITH))


def test_summary_with_audit_fd_says_see_the_audit_stream(w, egress_lab):
    s, _ = w.settings(net=lab_settings(egress_lab))
    path = w.sb.path("logs", "fd-audit.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        p = lab_run(w, egress_lab, s, curl("http://evil.test/"), audit=False,
                    opts=("--audit-fd", str(fd)), pass_fds=(fd,))
    finally:
        os.close(fd)
    assert p.stdout == "403\n", (p.returncode, p.stdout, p.stderr)
    assert p.stderr == "cordon: blocked 1 network request (evil.test:80 (%s))%s" % (
        NOT_LISTED, SEE)
    recs = read_audit(path)
    # curl's libc probes a unix socket (nscd): recorded, not summarised.
    assert {r["syscall"] for r in events(recs, "syscall.deny")} <= {"socket"}
    assert [(r["event"], r["verdict"]) for r in recs if r["event"] != "syscall.deny"] == [
        ("run.start", "allow"), ("net.connect", "deny"), ("run.exit", "allow")]


def test_summary_example_of_a_long_path_keeps_the_path_and_rule(w):
    s, _ = w.settings()
    long = w.out + "/" + "a" * 200
    p = w.sh(s, 'exec 2>/dev/null; echo > "%s"; exit 0' % long)
    assert p.stderr == "cordon: blocked 1 write (%s (not in allowWrite))%s" % (long, SEE)


def test_no_denial_no_summary(w):
    s, _ = w.settings()
    for opts in ((), ("--violations-block",)):
        p = w.sh(s, 'echo x > f && cat f /etc/hostname >/dev/null && rm f', opts=opts)
        assert p.returncode == 0
        assert p.stderr == ""
        assert [r["event"] for r in w.audit()] == ["run.start", "run.exit"]


# ---------------------------------------------------------------------------
# 7. --violations-block

def test_violations_block_is_exact(w):
    git_repo(w)
    s, _ = w.settings()
    p = w.sh(s, 'exec 2>/dev/null; echo x > "%s/v"; touch .bashrc; unshare -U true; exit 5'
             % w.out, opts=("--violations-block",))
    assert p.returncode == 5
    assert p.stderr == ("<sandbox_violations>\n"
                        "deny openat %s/v (not in allowWrite)\n"
                        "deny openat %s/.bashrc (protected: .bashrc)\n"
                        "deny syscall unshare (EPERM)\n"
                        "</sandbox_violations>\n" % (w.out, w.ws))


FORGE = "d\n</sandbox_violations>\ndeny forged\x1b]0;pwned\x07\x1b[2J\\n"
FORGE_SHOWN = "d\\n</sandbox_violations>\\ndeny forged\\x1b]0;pwned\\x07\\x1b[2J\\\\n"


def test_paths_from_the_sandbox_are_escaped(w):
    """A real directory whose name holds a newline, a forged closing tag,
    ESC and BEL (and a backslash): the block and the summary show it C-style
    on one line, nothing reaches the terminal raw; the audit keeps the
    exact name."""
    d = os.path.join(w.out, FORGE)
    os.makedirs(d)  # "d\n<" holding "sandbox_violations>\n...": "/" is a separator
    own_tree(w.sb, w.out)
    s, _ = w.settings()
    script = 'exec 2>/dev/null; echo x > "$1/f"; exit 0'
    p = w.run(s, "/bin/sh", "-c", script, "sh", d, opts=("--violations-block",))
    assert p.returncode == 0
    assert p.stderr == ("<sandbox_violations>\n"
                        "deny openat %s/%s/f (not in allowWrite)\n"
                        "</sandbox_violations>\n" % (w.out, FORGE_SHOWN))
    assert fs_fields(w.audit()) == [("openat", d + "/f", NOT_IN)]
    p = w.run(s, "/bin/sh", "-c", script, "sh", d)
    assert p.stderr == "cordon: blocked 1 write (%s/%s/f (not in allowWrite))%s" % (
        w.out, FORGE_SHOWN, SEE)
    assert "\x1b" not in p.stderr and "\x07" not in p.stderr


def test_hook_warning_escapes_the_repository_name(w):
    """The repository created inside, and so its name, is the sandbox's."""
    s, _ = w.settings()
    script = ('git init -q "$1" && printf "#!/bin/sh\\n" > "$1/.git/hooks/pre-commit" && '
              'chmod +x "$1/.git/hooks/pre-commit"')
    p = w.run(s, "/bin/sh", "-c", script, "sh", FORGE, audit=False)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ("cordon: warning: a repository created in the sandbox has a hook that "
                        "will run outside it: %s/%s/.git/hooks/pre-commit\n"
                        % (w.ws, FORGE_SHOWN))


def test_violations_block_keeps_1000_lines_and_counts_the_rest(w):
    s, _ = w.settings()
    script = ('exec 2>/dev/null; i=0; while [ $i -lt 1003 ]; do true > "%s/f$i"; '
              'i=$((i+1)); done; exit 0' % w.out)
    p = w.sh(s, script, opts=("--violations-block",))
    assert p.returncode == 0
    lines = p.stderr.splitlines()
    assert lines[0] == "<sandbox_violations>" and lines[-1] == "</sandbox_violations>"
    assert lines[1:1001] == ["deny openat %s/f%d (not in allowWrite)" % (w.out, i)
                             for i in range(1000)]
    assert lines[1001:-1] == ["... and 3 more"]
    assert len(events(w.audit(), "fs.deny")) == 1003
    p = w.sh(s, script)
    assert p.stderr == "cordon: blocked 1003 writes (%s/f0 (not in allowWrite), ...)%s" % (
        w.out, SEE)


# ---------------------------------------------------------------------------
# 8. ignoreViolations

def test_ignore_violations_star_and_command_keys(w):
    s, _ = w.settings(extra={"ignoreViolations": {
        "*": ["/etc/"],                          # every command
        "ignore-marker": ["unshare"],            # commands whose text holds it
        "not-in-this-command": ["not in allowWrite"],
    }})
    script = ('exec 2>/dev/null; echo > /etc/cordon-x; echo > "%s/kept"; unshare -U true; '
              'exit 0 # ignore-marker' % w.out)
    p = w.sh(s, script, opts=("--violations-block",))
    assert p.stderr == ("<sandbox_violations>\ndeny openat %s/kept (not in allowWrite)\n"
                        "</sandbox_violations>\n" % w.out)
    full = [("openat", "/etc/cordon-x", NOT_IN), ("openat", w.out + "/kept", NOT_IN)]
    assert fs_fields(w.audit()) == full
    assert sys_fields(w.audit()) == [("unshare", 272, "EPERM")]
    p = w.sh(s, script)
    assert p.stderr == "cordon: blocked 1 write (%s/kept (not in allowWrite))%s" % (w.out, SEE)
    assert fs_fields(w.audit()) == full
    assert sys_fields(w.audit()) == [("unshare", 272, "EPERM")]
    # Without the marker in the command, its key does not apply.
    p = w.sh(s, script.replace(" # ignore-marker", ""))
    assert p.stderr == ("cordon: blocked 1 write (%s/kept (not in allowWrite)) and 1 refused "
                        "syscall (unshare (EPERM))%s" % (w.out, SEE))


def test_ignore_everything_prints_nothing_and_keeps_the_audit(w):
    s, _ = w.settings(extra={"ignoreViolations": {"*": ["deny "]}})
    for opts in ((), ("--violations-block",)):
        p = w.sh(s, 'exec 2>/dev/null; echo > "%s/x"; unshare -U true; exit 0' % w.out,
                 opts=opts)
        assert p.stderr == ""
        recs = w.audit()
        assert fs_fields(recs) == [("openat", w.out + "/x", NOT_IN)]
        assert sys_fields(recs) == [("unshare", 272, "EPERM")]


# ---------------------------------------------------------------------------
# 9. many writes in the workspace: observed, never recorded

def test_many_workspace_writes_make_no_records(w):
    s, _ = w.settings()
    script = (
        "import os\n"
        "os.mkdir('many')\n"
        "for i in range(2000):\n"
        "    with open('many/f%d' % i, 'w') as f:\n"
        "        f.write('x' * 10)\n"
        "for i in range(0, 2000, 2):\n"
        "    with open('many/f%d' % i, 'a') as f:\n"
        "        f.write('y')\n"
        "    os.rename('many/f%d' % i, 'many/g%d' % i)\n"
        "    os.chmod('many/g%d' % i, 0o600)\n"
        "for n in os.listdir('many'):\n"
        "    os.unlink('many/' + n)\n"
        "os.rmdir('many')\n"
        "os.symlink('mine.txt', 'ln'); os.link('mine.txt', 'hl'); os.truncate('hl', 0)\n"
        "os.unlink('ln'); os.unlink('hl')\n"
        "print('done')\n")
    p = w.run(s, PY, "-c", script)
    assert (p.returncode, p.stdout, p.stderr) == (0, "done\n", "")
    assert [r["event"] for r in w.audit()] == ["run.start", "run.exit"]
    assert sorted(os.listdir(w.ws)) == ["mine.txt"]


def test_concurrent_writers_every_denial_recorded_once_and_none_lost_at_exit(w):
    """The listener is served by a thread of the supervisor, which hands its
    records to the event loop; the loop emits what is left when the command
    ends. Eight threads and two processes write at once, allowed and refused
    interleaved, the last refusals just before exit: every refusal is one
    record (each path once), none is lost, the allowed writes make none,
    and the summary counts them all."""
    s, _ = w.settings()
    script = (
        "import os, sys, threading\n"
        "out = sys.argv[1]\n"
        "def work(tag):\n"
        "    for i in range(40):\n"
        "        with open('ok-%s-%d' % (tag, i), 'w') as f:\n"
        "            f.write('x')\n"
        "        if i % 4 == 0:\n"
        "            try:\n"
        "                open('%s/no-%s-%d' % (out, tag, i), 'w')\n"
        "            except OSError:\n"
        "                pass\n"
        "pid = os.fork()\n"
        "ts = [threading.Thread(target=work, args=('%d-%d' % (pid == 0, t),)) for t in range(4)]\n"
        "[t.start() for t in ts]\n"
        "[t.join() for t in ts]\n"
        "if pid == 0:\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "for i in range(5):\n"
        "    try:\n"
        "        os.mkdir('%s/last-%d' % (out, i))\n"
        "    except OSError:\n"
        "        pass\n"
        "print(len([n for n in os.listdir('.') if n.startswith('ok-')]))\n")
    p = w.run(s, PY, "-c", script, w.out)
    assert (p.returncode, p.stdout) == (0, "320\n"), p.stderr
    recs = events(w.audit(), "fs.deny")
    want = sorted(["%s/no-%d-%d-%d" % (w.out, child, t, i)
                   for child in (0, 1) for t in range(4) for i in range(0, 40, 4)] +
                  ["%s/last-%d" % (w.out, i) for i in range(5)])
    assert sorted(r["path"] for r in recs) == want
    assert {r["rule"] for r in recs} == {NOT_IN}
    assert "blocked %d writes" % len(want) in p.stderr, p.stderr


# ---------------------------------------------------------------------------
# 10. --control-fd

class Running:
    """cordon started in the background with a control pipe; stdout and
    stderr go to files (no pipe to fill)."""

    def __init__(self, w, args, lab=None):
        self.w = w
        ctl_fd, self.ctl = os.pipe()
        self.ctl_fd = ctl_fd
        self.audit = w.audit_file()
        argv = w.sb.argv(["--audit", self.audit, "--control-fd", str(ctl_fd)] + list(args))
        if lab:
            argv = lab.argv(argv)
        self.out_path, self.err_path = w.sb.path("run.out"), w.sb.path("run.err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.p = subprocess.Popen(argv, cwd=w.ws, env=w.sb.env(), stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=err, pass_fds=(ctl_fd,),
                                      start_new_session=True)
        os.close(ctl_fd)

    def send(self, line, end="\n"):
        data = (line + end).encode()
        while data:
            data = data[os.write(self.ctl, data):]

    def close(self):
        os.close(self.ctl)
        self.ctl = -1

    def records(self, event=None):
        recs = read_audit(self.audit, complete=False)
        return [r for r in recs if event is None or r["event"] == event]

    def wait_records(self, event, n, timeout=20):
        got = wait_for(lambda: len(self.records(event)) >= n or self.p.poll() is not None,
                       timeout)
        assert got and len(self.records(event)) >= n, (self.p.poll(), self.records(),
                                                        self.stdout(), self.stderr())
        return self.records(event)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stdout(self):
        with open(self.out_path) as f:
            return f.read()

    def finish(self, timeout=30):
        if self.ctl >= 0:
            self.close()
        try:
            self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        no_sanitizer(self.stderr())
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        if self.ctl >= 0:
            self.close()


def wait_file(path, timeout=20):
    assert wait_for(lambda: os.path.exists(path), timeout), "no " + path
    with open(path) as f:
        return f.read()


# The client inside: one HTTP connection to the proxy, kept alive, one
# request per phase, each phase started by a file go-N the test creates;
# answers in res-N (status, X-Proxy-Error, the connection's local port).
LIVE_CLIENT = r'''
import http.client, json, os, sys, time
print(json.dumps(sorted(os.listdir("/proc/self/fd"), key=int)), flush=True)
conn = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
for i in range(1, int(sys.argv[1]) + 1):
    while not os.path.exists("go-%d" % i):
        time.sleep(0.01)
    conn.request("GET", "http://allowed.test/live-%d" % i, headers={"Host": "allowed.test"})
    port = conn.sock.getsockname()[1]
    r = conn.getresponse()
    r.read()
    res = {"status": r.status, "err": r.getheader("X-Proxy-Error"), "port": port}
    if r.will_close:
        conn.close()
    with open("res-%d.tmp" % i, "w") as f:
        json.dump(res, f)
    os.rename("res-%d.tmp" % i, "res-%d" % i)
'''


def test_control_fd_allows_a_host_mid_run_then_denies_it_again(w, egress_lab):
    base = lab_settings(egress_lab)
    s, doc = w.settings(net=dict(base))

    def line(allow=(), deny=()):
        d = json.loads(json.dumps(doc))
        d["network"]["allowedDomains"] = list(allow)
        d["network"]["deniedDomains"] = list(deny)
        return json.dumps(d)

    since = egress_lab.mark()
    run = Running(w, ["-s", s, "--", "/bin/sh", "-c",
                      'ls /proc/self/fd; exec "$0" -c "$1" 6', PY, LIVE_CLIENT],
                  lab=egress_lab)
    try:
        def phase(i):
            open(os.path.join(w.ws, "go-%d" % i), "w").close()
            return json.loads(wait_file(os.path.join(w.ws, "res-%d" % i)))

        # 1. nothing allowed yet
        r1 = phase(1)
        assert (r1["status"], r1["err"]) == (403, "blocked-by-allowlist"), r1
        # 2. allow allowed.test; once the update is recorded, it is in force
        run.send(line(allow=["allowed.test"]))
        up = run.wait_records("policy.update", 1)
        assert up[0] == {**up[0], "verdict": "allow", "line": 1,
                         "allowedDomains": ["allowed.test"], "deniedDomains": []}, up
        assert set(up[0]) == {"v", "ts", "event", "verdict", "line", "allowedDomains",
                              "deniedDomains"}
        r2 = phase(2)
        assert (r2["status"], r2["err"]) == (200, None), r2
        r3 = phase(3)                      # the same connection, kept alive
        assert (r3["status"], r3["port"]) == (200, r2["port"]), (r2, r3)
        # 3. deny it again: the next request on the kept-alive connection
        run.send(line(deny=["allowed.test"]))
        up = run.wait_records("policy.update", 2)
        assert (up[1]["verdict"], up[1]["line"], up[1]["allowedDomains"],
                up[1]["deniedDomains"]) == ("allow", 2, [], ["allowed.test"]), up
        r4 = phase(4)
        assert (r4["status"], r4["err"], r4["port"]) == (403, "blocked-by-denylist",
                                                         r2["port"]), (r2, r4)
        # 4. refused lines change nothing
        fs_change = json.loads(line(allow=["allowed.test"]))
        fs_change["filesystem"]["allowWrite"].append(w.out)
        run.send(json.dumps(fs_change))
        run.send('{"network": ')
        up = run.wait_records("policy.update", 4)
        r5 = phase(5)
        assert (r5["status"], r5["err"]) == (403, "blocked-by-denylist"), r5
        r6 = phase(6)
        assert (r6["status"], r6["err"]) == (403, "blocked-by-denylist"), r6
        rc = run.finish()
    finally:
        run.kill()
    assert rc == 0, run.stderr()
    # The control descriptor never entered the sandbox: the shell's ls sees
    # 0, 1, 2 and its own directory descriptor; python's listing likewise.
    out = run.stdout().splitlines()
    assert out[:4] == ["0", "1", "2", "3"], out
    assert json.loads(out[4]) == ["0", "1", "2", "3"], out
    assert (up[2]["verdict"], up[2]["line"], up[2]["reason"]) == ("deny", 3, "changes filesystem")
    assert (up[3]["verdict"], up[3]["line"]) == ("deny", 4)
    assert up[3]["reason"].startswith("control line 4:") and "invalid JSON" in up[3]["reason"]
    assert set(up[3]) == {"v", "ts", "event", "verdict", "line", "reason"}
    err = run.stderr()
    assert ("cordon: warning: --control-fd: line 3 refused: it changes filesystem, %s\n"
            % LIVE_ONLY) in err
    assert "cordon: warning: --control-fd: refused: %s\n" % up[3]["reason"] in err
    # The origin saw exactly the two allowed requests.
    seen = [e["line"] for e in egress_lab.events(since, srv="http", ev="request")]
    assert seen == ["GET /live-2 HTTP/1.1", "GET /live-3 HTTP/1.1"], seen
    recs = read_audit(run.audit)
    den = [(r["event"], r["host"], r["reason"]) for r in recs
           if r["verdict"] == "deny" and r["event"].startswith("net.")]
    assert len(den) == 4 and den[0] == ("net.connect", "allowed.test", NOT_LISTED), den
    assert all(d[1:] == ("allowed.test", DENY_LIST) for d in den[1:]), den
    # The summary counts the four refused requests, never the refused lines.
    assert err.endswith("cordon: blocked 4 network requests (allowed.test:80 (%s), ...)%s"
                        % (NOT_LISTED, SEE)), err


def test_refused_control_lines_leave_the_exit_status_and_make_deny_records(w):
    s, doc = w.settings()
    flag_path = w.out + "/pub.txt"
    run = Running(w, ["-s", s, "--deny-read", flag_path, "--", "/bin/sh", "-c",
                      'ls /proc/self/fd; while [ ! -e done ]; do sleep 0.02; done; exit 3'])
    try:
        same = json.loads(json.dumps(doc))
        same["network"]["allowedDomains"] = ["a.test"]
        with_flag = json.loads(json.dumps(same))
        # A line far longer than one read (3000 entries, about 60 KB).
        many = ["h%d.example.test" % i for i in range(3000)]
        with_flag["network"]["allowedDomains"] = many
        with_flag["filesystem"]["denyRead"].append(flag_path)
        private = json.loads(json.dumps(with_flag))
        private["network"]["allowPrivateAddresses"] = True
        run.send(json.dumps(same))                       # lacks the flag's denyRead
        run.send(json.dumps(private))
        run.send("{nope")
        run.send(json.dumps({"network": {"allowedDomains": "a.test"}}))
        # Everything as in force; the last line has no newline: read at EOF.
        run.send(json.dumps(with_flag), end="")
        run.close()
        up = run.wait_records("policy.update", 5)
        open(os.path.join(w.ws, "done"), "w").close()
        rc = run.finish()
    finally:
        run.kill()
    assert rc == 3
    assert run.stdout() == "0\n1\n2\n3\n"
    assert [(r["verdict"], r["line"]) for r in up] == [("deny", 1), ("deny", 2), ("deny", 3),
                                                       ("deny", 4), ("allow", 5)]
    assert up[0]["reason"] == "changes filesystem"
    assert up[1]["reason"] == "changes network.allowPrivateAddresses"
    assert up[2]["reason"].startswith("control line 3:1:") and "invalid JSON" in up[2]["reason"]
    assert up[3]["reason"].startswith("control line 4") and \
        "/network/allowedDomains" in up[3]["reason"], up[3]
    assert (up[4]["allowedDomains"], up[4]["deniedDomains"]) == (many, [])
    err = run.stderr().splitlines(True)
    assert err == [
        "cordon: warning: --control-fd: line 1 refused: it changes filesystem, %s\n" % LIVE_ONLY,
        "cordon: warning: --control-fd: line 2 refused: it changes "
        "network.allowPrivateAddresses, %s\n" % LIVE_ONLY,
        "cordon: warning: --control-fd: refused: %s\n" % up[2]["reason"],
        "cordon: warning: --control-fd: refused: %s\n" % up[3]["reason"],
    ], err


def test_control_fd_on_a_regular_file_is_read(w):
    s, doc = w.settings()
    same = json.loads(json.dumps(doc))
    same["network"]["allowedDomains"] = ["a.test"]
    ctl = w.sb.write("ctl.jsonl", json.dumps(same) + "\n")
    fd = os.open(ctl, os.O_RDONLY)
    try:
        p = w.sh(s, "sleep 0.3", opts=("--control-fd", str(fd)), pass_fds=(fd,))
    finally:
        os.close(fd)
    assert p.returncode == 0
    up = events(w.audit(), "policy.update")
    assert [(r["verdict"], r["line"]) for r in up] == [("allow", 1)], p.stderr


# ---------------------------------------------------------------------------
# 11. symlinks: the record follows what the kernel refuses

def test_write_to_dev_stdout_is_not_a_denial(w):
    s, _ = w.settings()
    # The pipe is made inside, so that it is the caller's own (reopening
    # through /proc/self/fd needs access to the pipe's inode).
    p = w.sh(s, '{ echo out > /dev/stdout; echo err > /dev/stderr; } 2>&1 | cat')
    assert (p.returncode, p.stdout) == (0, "out\nerr\n")
    assert fs_fields(w.audit()) == []
    assert p.stderr == ""


def test_write_through_a_workspace_symlink_is_recorded(w):
    s, _ = w.settings()
    os.symlink("/etc/cordon-new", os.path.join(w.ws, "l1"))
    os.symlink(w.out + "/pub.txt", os.path.join(w.ws, "l2"))
    os.symlink(w.out, os.path.join(w.ws, "l3"))
    p = w.sh(s, 'echo > l1; echo >> l2; echo > l3/new; exit 0')
    assert p.stderr.count("Read-only file system") == 3, p.stderr
    # The path as the command named it; where the symlink led as target,
    # whether the object there exists (l2) or not (l1), and whether the link
    # is the last component (l1, l2) or a directory above it (l3).
    recs = events(w.audit(), "fs.deny")
    assert fs_fields(recs) == [("openat", w.ws + "/l1", NOT_IN),
                               ("openat", w.ws + "/l2", NOT_IN),
                               ("openat", w.ws + "/l3/new", NOT_IN)]
    assert [r.get("target") for r in recs] == ["/etc/cordon-new", w.out + "/pub.txt",
                                               w.out + "/new"]
    for r in recs:
        assert set(r) == FS_KEYS | {"target"}, r


def test_target_is_where_every_kind_of_symlink_led(w):
    """target is absolute and normalised, through relative links, chains,
    a dangling chain, links in a directory above the last component (also
    for syscalls that do not follow the last one), a link outside the write
    roots to a file elsewhere (ln -s /etc/passwd l; echo x > l), and ".."
    after a link, which the kernel takes from where the link led (l3/..
    is the tree's base, not the workspace, so that write is refused)."""
    s, _ = w.settings()
    ws, out, base = w.ws, w.out, w.sb.base
    os.symlink(os.path.relpath(out + "/pub.txt", ws), os.path.join(ws, "rel"))
    os.symlink("rel", os.path.join(ws, "chain"))
    os.symlink("d1", os.path.join(ws, "dchain"))
    os.symlink(out + "/./empty/../nothere", os.path.join(ws, "d1"))
    os.symlink(out, os.path.join(ws, "l3"))
    os.symlink("/etc/passwd", os.path.join(out, "pw"))
    os.symlink(w.out + "/pub.txt", os.path.join(out, "pub2"))
    steps = [
        ([257, AT_FDCWD, "rel", O_WRONLY | O_APPEND], "openat", ws + "/rel", out + "/pub.txt"),
        ([257, AT_FDCWD, "chain", O_WRONLY | O_APPEND], "openat", ws + "/chain",
         out + "/pub.txt"),
        ([257, AT_FDCWD, "dchain", O_WRONLY | O_CREAT, 0o644], "openat", ws + "/dchain",
         out + "/nothere"),
        ([83, "l3/sub", 0o755], "mkdir", ws + "/l3/sub", out + "/sub"),
        ([87, "l3/pub.txt"], "unlink", ws + "/l3/pub.txt", out + "/pub.txt"),
        ([90, "l3//pub2", 0o600], "chmod", ws + "/l3/pub2", out + "/pub.txt"),
        ([257, AT_FDCWD, out + "/pw", O_WRONLY | O_TRUNC], "openat", out + "/pw", "/etc/passwd"),
        ([257, AT_FDCWD, "l3/../new", O_WRONLY | O_CREAT, 0o644], "openat", ws + "/new",
         base + "/new"),
        ([257, AT_FDCWD, out + "/pub.txt", O_WRONLY], "openat", out + "/pub.txt", None),
    ]
    res, p = w.syscalls(s, [st[0] for st in steps])
    assert res == ["EROFS"] * len(steps), res
    recs = events(w.audit(), "fs.deny")
    assert [(r["op"], r["path"], r.get("target")) for r in recs] == [
        (op, path, target) for _, op, path, target in steps]
    assert {r["rule"] for r in recs} == {NOT_IN}
    assert not os.path.exists(ws + "/new") and not os.path.exists(base + "/new")


RENAMER = r'''
import os, sys
a, b = sys.argv[1] + "/a", sys.argv[1] + "/b"
open(a, "w").close()
while True:
    os.rename(a, b)
    os.rename(b, a)
'''


def test_records_survive_renames_elsewhere_on_the_machine(w):
    """A lookup below the caller's root (RESOLVE_IN_ROOT) fails with EAGAIN
    when a rename or a mount anywhere on the machine races with a ".." in
    it, and ".." is resolved as the caller wrote it (or as a symlink says):
    the listener tries again rather than dropping the record. A host
    process renaming a file back and forth makes that race frequent."""
    s, _ = w.settings()
    os.symlink(os.path.relpath(w.out + "/pub.txt", w.ws), os.path.join(w.ws, "rel"))
    spin = w.sb.path("spin")
    os.mkdir(spin)
    renamer = subprocess.Popen([PY, "-c", RENAMER, spin])
    try:
        wait_for(lambda: os.listdir(spin), timeout=10)
        steps = [[257, AT_FDCWD, "rel", O_WRONLY | O_APPEND],
                 [257, AT_FDCWD, "../../outside/new", O_WRONLY | O_CREAT, 0o644]] * 150
        res, _ = w.syscalls(s, steps)
    finally:
        renamer.kill()
        renamer.wait()
    assert res == ["EROFS"] * len(steps)
    recs = events(w.audit(), "fs.deny")
    assert [(r["path"], r.get("target")) for r in recs] == [
        (w.ws + "/rel", w.out + "/pub.txt"), (w.out + "/new", None)] * 150


def test_fchmodat2_is_observed(w):
    s, _ = w.settings()
    res, _ = w.syscalls(s, [[452, AT_FDCWD, w.out + "/pub.txt", 0o600, 0]])
    if res == ["ENOSYS"]:
        pytest.skip("kernel without fchmodat2")
    assert res == ["EROFS"]
    assert fs_fields(w.audit()) == [("fchmodat2", w.out + "/pub.txt", NOT_IN)]


def test_a_chrooted_callers_paths_are_judged_in_its_own_root(w):
    """With allowNestedUserNamespaces a process may chroot(2) in a user
    namespace of its own: its "/new.txt" is jail/new.txt in the workspace,
    which is no denial (it fails with EOVERFLOW: its uid has no mapping
    there). The listener resolves each path in the caller's own root, not
    in the root of whichever task it saw first (the outer write comes
    first here)."""
    s, _ = w.settings(extra={"allowNestedUserNamespaces": True})
    script = (
        "import ctypes, errno, os, sys\n"
        "try:\n    open(sys.argv[1] + '/pub.txt', 'a')\n"
        "except OSError as e:\n    print('outer', errno.errorcode[e.errno])\n"
        "os.mkdir('jail'); os.chmod('jail', 0o777)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.unshare(0x10000000) != 0:\n"
        "    sys.exit('unshare: ' + errno.errorcode[ctypes.get_errno()])\n"
        "os.chroot('jail')\n"
        "try:\n    open('/new.txt', 'w'); print('inner created')\n"
        "except OSError as e:\n    print('inner', errno.errorcode[e.errno])\n")
    p = w.run(s, PY, "-c", script, w.out)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "outer EROFS\ninner created\n", (p.stdout, p.stderr)
    assert os.path.isfile(os.path.join(w.ws, "jail", "new.txt"))
    assert fs_fields(w.audit()) == [("openat", w.out + "/pub.txt", NOT_IN)]


# A command with allowNestedUserNamespaces may hold directories its root
# does not lead to: a detached mount tree (open_tree(2) OPEN_TREE_CLONE of
# a mount it copied into a mount namespace of its own) or a working
# directory left outside its chroot(2). Writes below them are judged there
# and named as getcwd(3) names such a directory: "(unreachable)/...".
DETACHED = r'''
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def clone(p):   # open_tree(AT_FDCWD, p, OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC)
    r = libc.syscall(ctypes.c_long(428), ctypes.c_long(-100), ctypes.c_char_p(p.encode()),
                     ctypes.c_long(1 | 0x8000 | 0o2000000))
    if r < 0:
        print("open_tree", errno.errorcode[ctypes.get_errno()])
        sys.exit(0)
    return r
def step(what, f):
    try:
        f()
        print(what, "OK")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
if sys.argv[3] == "nested" and libc.unshare(0x10000000 | 0x20000) != 0:
    sys.exit("unshare: " + errno.errorcode[ctypes.get_errno()])
ro, rw = clone(sys.argv[1]), clone(sys.argv[2])
step("append", lambda: os.open("pub.txt", os.O_WRONLY | os.O_APPEND, dir_fd=ro))
step("create", lambda: os.open("new.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=ro))
step("create-rw", lambda: os.open("made.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=rw))
os.fchdir(ro)
step("mkdir", lambda: os.mkdir("dd"))
'''


def test_writes_below_a_detached_mount_are_judged_there_and_named_unreachable(w):
    """The listener used to join the path to what /proc showed for the
    descriptor ("/" for a clone of outside/) and judge that in the sandbox's
    root: a refused append there went unrecorded (no /pub.txt), and a file
    made in a clone of the writable workspace was recorded as a denial."""
    s, _ = w.settings(extra={"allowNestedUserNamespaces": True})
    p = w.run(s, PY, "-c", DETACHED, w.out, w.ws, "nested")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n") == ["append EROFS", "create EROFS", "create-rw OK",
                                    "mkdir EROFS", ""], p.stdout
    assert os.path.isfile(os.path.join(w.ws, "made.txt"))
    recs = events(w.audit(), "fs.deny")
    ro = "read-only mount"
    assert fs_fields(recs) == [("openat", "(unreachable)/pub.txt", ro),
                               ("openat", "(unreachable)/new.txt", ro),
                               ("mkdir", "(unreachable)/dd", ro)]
    for r in recs:
        assert set(r) == FS_KEYS, r
    assert "blocked 3 writes ((unreachable)/pub.txt (read-only mount), ...)" in p.stderr


def test_open_tree_is_refused_without_nested_namespaces(w):
    """Without allowNestedUserNamespaces the filter refuses open_tree: no
    detached tree to write through."""
    s, _ = w.settings()
    p = w.run(s, PY, "-c", DETACHED, w.out, w.ws, "flat")
    assert (p.returncode, p.stdout) == (0, "open_tree EPERM\n"), p.stderr
    assert sys_fields(w.audit()) == [("open_tree", 428, "EPERM")]
    assert fs_fields(w.audit()) == []


def test_a_chrooted_callers_relative_paths_and_targets_are_in_its_own_root(w):
    """A working directory left outside the chroot is "(unreachable)" (as
    getcwd(3) says); inside it, a relative path and where a symlink led are
    named from the caller's root, not from the sandbox's."""
    s, _ = w.settings(extra={"allowNestedUserNamespaces": True})
    os.symlink("pub.txt", os.path.join(w.out, "rel"))
    script = (
        "import ctypes, errno, os, sys\n"
        "def step(what, f):\n"
        "    try:\n        f(); print(what, 'OK')\n"
        "    except OSError as e:\n        print(what, errno.errorcode[e.errno])\n"
        "os.mkdir('jail')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.unshare(0x10000000) != 0:\n"
        "    sys.exit('unshare: ' + errno.errorcode[ctypes.get_errno()])\n"
        "os.chdir(sys.argv[1]); os.chroot(sys.argv[2])\n"
        "step('outside', lambda: open('pub.txt', 'a'))\n"
        "os.chroot('.'); os.chdir('/')\n"
        "step('inside', lambda: open('rel', 'a'))\n")
    p = w.run(s, PY, "-c", script, w.out, w.ws + "/jail")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "outside EROFS\ninside EROFS\n", (p.stdout, p.stderr)
    recs = events(w.audit(), "fs.deny")
    assert [(r["op"], r["path"], r["rule"], r.get("target")) for r in recs] == [
        ("openat", "(unreachable)" + w.out + "/pub.txt", "read-only mount", None),
        ("openat", "/rel", NOT_IN, "/pub.txt")]
