"""Helpers shared by the integration tests (no fixtures here; see conftest.py).

`probe` runs a list of filesystem operations inside one sandbox with python3
and returns, for each, ("OK", value) or (ERRNO_NAME, None), so a test can
check the exact errno of every attempt (EACCES, EROFS, ...) and not merely
that something failed.
"""
import json
import os
import time

PY = "/usr/bin/python3"

PROBE = r'''
import errno, json, os, sys

def run(op, *a):
    if op == "read":
        with open(a[0], "rb") as f:
            return f.read().decode(errors="replace")
    if op == "listdir":
        return sorted(os.listdir(a[0]))
    if op == "write":
        with open(a[0], "w") as f:
            f.write(a[1] if len(a) > 1 else "x")
        return None
    if op == "append":
        with open(a[0], "a") as f:
            f.write(a[1] if len(a) > 1 else "x")
        return None
    if op == "create":
        os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return None
    if op == "mkdir":
        os.mkdir(a[0])
        return None
    if op == "unlink":
        os.unlink(a[0])
        return None
    if op == "rmdir":
        os.rmdir(a[0])
        return None
    if op == "rename":
        os.rename(a[0], a[1])
        return None
    if op == "link":
        os.link(a[0], a[1])
        return None
    if op == "symlink":
        os.symlink(a[0], a[1])
        return None
    if op == "chmod":
        os.chmod(a[0], int(a[1], 8))
        return None
    if op == "truncate":
        os.truncate(a[0], 0)
        return None
    if op == "exists":
        return os.path.lexists(a[0])
    if op == "readlink":
        return os.readlink(a[0])
    raise SystemExit("probe: unknown op " + op)

out = []
for step in json.loads(sys.argv[1]):
    try:
        out.append(["OK", run(*step)])
    except OSError as e:
        out.append([errno.errorcode.get(e.errno, str(e.errno)), None])
print(json.dumps(out))
'''


def probe(sb, ops, *opts, cwd=None, env=None):
    """Run ops (a list of [op, arg, ...]) inside `cordon OPTS -- python3` and
    return a list of (status, value) tuples, status "OK" or an errno name."""
    p = sb.run(*opts, "--", PY, "-c", PROBE, json.dumps(ops), cwd=cwd, env=env)
    assert p.returncode == 0, "probe failed to run: rc=%d\n%s" % (p.returncode, p.stderr)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(res) == len(ops)
    return [tuple(r) for r in res]


def wait_for(pred, timeout=10.0, interval=0.02):
    """Poll pred() until it is true or timeout seconds pass; returns its last value.
    A bound on waiting, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def sleep_pids(arg):
    """Pids of host processes that are exactly `sleep ARG`."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if len(args) == 3 and os.path.basename(args[0]) == b"sleep" and \
                args[1] == arg.encode() and args[2] == b"":
            found.append(int(d))
    return found


def kill_pids(pids):
    import signal
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def shx(sb, script, *args, opts=(), **kw):
    """Run `cordon OPTS -- /bin/sh -c SCRIPT sh ARGS...`: the script sees ARGS
    as $1..., and the shell's own messages start with "sh: 1: "."""
    return sb.run(*opts, "--", "/bin/sh", "-c", script, "sh", *args, **kw)


def own_tree(sb, top):
    """Give every file and directory under top (top included) to the sandbox's
    user, world-readable, as the harness does for the paths it creates itself."""
    for root, dirs, files in os.walk(top):
        for n in dirs + files + ["."]:
            p = os.path.normpath(os.path.join(root, n))
            if not os.path.islink(p):
                st = os.stat(p)
                os.chmod(p, (st.st_mode & 0o7777) | (0o755 if os.path.isdir(p) else 0o644))
            sb.own(p)


def as_caller(sb, argv):
    """argv run as the sandbox's user (through setpriv for uid 65534) but
    without cordon: the control case of a test."""
    return sb.argv([])[:-1] + list(argv)


_SWITCHES = {}


def disable_layers(sb, layers):
    """Options that switch the named hardening layers off (seccomp, landlock,
    ...) when the binary was built with -Dtest_switches=true, so that a test
    can exercise the layer underneath them alone; None when it was not."""
    st = os.stat(sb.bin)
    key = (st.st_size, st.st_mtime_ns, layers)
    if key not in _SWITCHES:
        import subprocess
        p = subprocess.run([sb.bin, "--test-disable-layer", layers, "--print-policy"],
                           capture_output=True, text=True, env=sb.env(), timeout=30)
        _SWITCHES[key] = p.returncode == 0
    return ("--test-disable-layer", layers) if _SWITCHES[key] else None
