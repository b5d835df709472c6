"""What the command holds and what it can reach (issue: foundation): no
capabilities, a locked mount view that even a uid-0 command (or one that makes
its own user namespace) cannot take apart, no propagation of later host mounts,
no inherited file descriptors, a new session without a controlling terminal,
and no network. Every test runs as root and as uid 65534.
"""
import fcntl
import json
import os
import socket
import subprocess
import termios

import pytest

from helpers import PY, as_caller, disable_layers, own_tree, probe, shx, wait_for

# ---------------------------------------------------------------------------
# capabilities

def test_command_holds_no_capabilities(sb):
    p = sb.run("--", "grep", "-E", "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):", "/proc/self/status")
    assert p.returncode == 0, p.stderr
    fields = dict(line.split(":\t") for line in p.stdout.splitlines())
    assert fields == {"CapInh": "0000000000000000", "CapPrm": "0000000000000000",
                      "CapEff": "0000000000000000", "CapBnd": "0000000000000000",
                      "CapAmb": "0000000000000000", "NoNewPrivs": "1"}


def test_no_dac_override_mknod_or_sethostname(sb):
    """A file the host's root made with mode 000 in the writable workspace: a
    uid-0 command would read it with CAP_DAC_OVERRIDE; it must not. Nor may it
    make device nodes (CAP_MKNOD) or rename its host (CAP_SYS_ADMIN)."""
    path = sb.write("home/ws/root-only.txt", "SECRET-ROOT\n", mode=0o000)
    if os.geteuid() == 0:
        os.lchown(path, 0, 0)
    p = shx(sb, 'cat root-only.txt; mknod node c 1 3; '
            'exec "$1" -c "import socket; socket.sethostname(\'evil\')"', PY)
    assert "SECRET-ROOT" not in p.stdout
    lines = p.stderr.splitlines()
    assert lines[0] == "cat: root-only.txt: Permission denied"
    assert lines[1] == "mknod: node: Operation not permitted"
    assert lines[-1] == "PermissionError: [Errno 1] Operation not permitted"
    assert not os.path.exists(sb.ws + "/node")


# ---------------------------------------------------------------------------
# the locked mount view

MOUNT_PROBE = r'''
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND, MS_REC, MNT_DETACH = 32, 4096, 16384, 2
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000

def res(rc):
    return "OK" if rc == 0 else errno.errorcode[ctypes.get_errno()]

out = {}
if sys.argv[1] == "nested":
    # The strongest position a command can reach: its own user namespace, in
    # which it holds every capability, and a mount namespace owned by it.
    out["unshare"] = res(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS))
    if out["unshare"] != "OK":
        print(json.dumps(out)); sys.exit(0)
    st = open("/proc/self/status").read()
    out["CapEff"] = st.split("CapEff:")[1].split()[0]
    os.mkdir("/tmp/peek")
    # a non-recursive bind of a parent would show what its masks cover
    out["bind-parent"] = res(libc.mount(sys.argv[3].encode(), b"/tmp/peek", None, MS_BIND, None))
for p in sys.argv[2].split(","):
    b = p.encode()
    out[p] = [res(libc.umount2(b, 0)), res(libc.umount2(b, MNT_DETACH)),
              res(libc.mount(None, b, None, MS_REMOUNT, None)),
              res(libc.mount(None, b, None, MS_REMOUNT | MS_BIND, None))]
# and after all that, from where the attempts were made
try:
    open(sys.argv[4], "rb").read()
    out["read-after"] = "OK"
except OSError as e:
    out["read-after"] = errno.errorcode[e.errno]
print(json.dumps(out))
'''


def mask_tree(sb, nested=False):
    o = sb.outside
    sb.write("outside/secret.txt", "SECRET-FILE\n")
    sb.write("outside/closed/c.txt", "SECRET-C\n")
    sb.write("outside/pub.txt", "public\n")
    own_tree(sb, o)
    s = {"filesystem": {"allowRead": [sb.base], "denyRead": [o + "/secret.txt", o + "/closed"]}}
    if nested:
        s["allowNestedUserNamespaces"] = True
    # the masks: a denied file, a denied directory, a read-only bind (the
    # tree itself) and the read-only /proc/sys
    return sb.settings(s), [o + "/secret.txt", o + "/closed", sb.base, "/proc/sys"]


def assert_masks_intact(sb, s):
    o = sb.outside
    r = probe(sb, [["read", o + "/secret.txt"], ["listdir", o + "/closed"],
                   ["create", o + "/new"], ["read", o + "/pub.txt"]], "-s", s)
    assert r == [("EACCES", None), ("EACCES", None), ("EROFS", None), ("OK", "public\n")]


def test_masks_cannot_be_unmounted_or_remounted(sb):
    s, masks = mask_tree(sb)
    o = sb.outside
    # util-linux first, then the bare syscalls
    script = "; ".join('umount "%s"; mount -o remount,rw "%s"; mount -o remount,bind,rw "%s"'
                       % (m, m, m) for m in masks)
    script += '; cat "%s/secret.txt"; ls "%s/closed"; echo x > "%s/new"' % (o, o, o)
    p = shx(sb, script, opts=("-s", s))
    err = [line for line in p.stderr.splitlines()
           if not line.strip().startswith("dmesg(1)")]
    expected = []
    for m in masks:
        expected.append("umount: %s: must be superuser to unmount." % m)
        if sb.user == "root" and m.endswith(".txt"):
            # mount(2) fails with EPERM; libmount words that so for a file
            expected += ["mount: %s: mount point is not a directory." % m] * 2
        elif sb.user == "root":
            # uid 0 without CAP_SYS_ADMIN: mount(2) itself fails with EPERM
            expected += ["mount: %s: permission denied." % m] * 2
        else:
            expected += ["mount: %s: must be superuser to use mount." % m] * 2
    expected += ["cat: %s/secret.txt: Permission denied" % o,
                 "ls: cannot open directory '%s/closed': Permission denied" % o,
                 "sh: 1: cannot create %s/new: Read-only file system" % o]
    assert err == expected
    assert "SECRET" not in p.stdout

    p = sb.run("-s", s, "--", PY, "-c", MOUNT_PROBE, "direct", ",".join(masks), sb.base,
               o + "/secret.txt")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res.pop("read-after") == "EACCES"
    assert res == {m: ["EPERM"] * 4 for m in masks}
    assert_masks_intact(sb, s)


def nested_attack(sb, s, masks, *opts):
    o = sb.outside
    p = sb.run(*opts, "-s", s, "--", "/bin/sh", "-c",
               '"$0" -c "$1" nested "$2" "$3" "$4/secret.txt"; cat "$4/secret.txt"; '
               'ls "$4/closed"', PY, MOUNT_PROBE, ",".join(masks), sb.base, o)
    out, rest = p.stdout.split("\n", 1)
    assert p.stderr == ("cat: %s/secret.txt: Permission denied\n"
                        "ls: cannot open directory '%s/closed': Permission denied\n" % (o, o))
    assert "SECRET" not in rest
    res = json.loads(out)
    assert res.pop("unshare") == "OK"
    assert res.pop("CapEff") == "000001ffffffffff"
    # every capability there, CAP_DAC_OVERRIDE included, and still no read
    assert res.pop("read-after") == "EACCES"
    return res


# what the kernel answers for mounts inherited from a more privileged mount
# namespace (MNT_LOCKED): umount EINVAL, remount EPERM, and EINVAL for a
# non-recursive bind of a parent, which would uncover what its masks hide
LOCKED = ["EINVAL", "EINVAL", "EPERM", "EPERM"]


def test_masks_are_locked_even_in_a_nested_user_namespace(sb):
    """allowNestedUserNamespaces lets the command hold every capability in a
    user namespace of its own, with a mount namespace of its own: the masks
    still cannot be unmounted, remounted or bound around."""
    s, masks = mask_tree(sb, nested=True)
    res = nested_attack(sb, s, masks)
    locked = dict({m: LOCKED for m in masks}, **{"bind-parent": "EINVAL"})
    # umount(2) checks the lock before any LSM hook; a new bind meets
    # Landlock's mount hook first (EPERM) where the build applies Landlock
    assert res.pop("bind-parent") in ("EINVAL", "EPERM")
    assert res == {m: LOCKED for m in masks}
    assert_masks_intact(sb, s)
    off = disable_layers(sb, "seccomp,landlock")
    if off:
        # the mount lock alone
        assert nested_attack(sb, s, masks, *off) == locked


def test_nested_user_namespaces_are_refused_by_default(sb):
    s, masks = mask_tree(sb)
    # The sandbox's user namespace may hold one child, the command's: the
    # kernel refuses another with ENOSPC. A seccomp filter, where the build
    # has one, refuses it first with EPERM.
    p = sb.run("-s", s, "--", "unshare", "-U", "true")
    assert p.returncode == 1
    assert p.stderr in ("unshare: unshare failed: No space left on device\n",
                        "unshare: unshare failed: Operation not permitted\n")
    first_layer = "ENOSPC" if "No space" in p.stderr else "EPERM"
    p = sb.run("-s", s, "--", PY, "-c", MOUNT_PROBE, "nested", ",".join(masks), sb.base,
               sb.outside + "/secret.txt")
    assert p.stdout == '{"unshare": "%s"}\n' % first_layer
    off = disable_layers(sb, "seccomp")
    if off:
        # the user-namespace limit alone
        p = sb.run(*off, "-s", s, "--", "unshare", "-U", "true")
        assert p.stderr == "unshare: unshare failed: No space left on device\n"


def test_host_mounts_made_later_do_not_propagate_in(sb):
    if os.geteuid() != 0:
        pytest.skip("mounting on the host needs root")
    mnt = sb.mkdir("outside/mnt")
    sb.write("outside/mnt/under.txt", "under\n")
    s = sb.settings({"filesystem": {"allowRead": [sb.base], "allowWrite": [sb.ws]}})
    script = ('ls -A "$1" > before.txt; stat -c %d "$1" >> before.txt; : > ready; '
              'while [ ! -e go ]; do sleep 0.02; done; '
              'ls -A "$1" > after.txt; stat -c %d "$1" >> after.txt')
    proc = sb.popen("-s", s, "--", "/bin/sh", "-c", script, "sh", mnt,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mounted = False
    try:
        assert wait_for(lambda: os.path.exists(sb.ws + "/ready") or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "cordon-it", mnt], check=True)
        mounted = True
        with open(mnt + "/host-only.txt", "w") as f:
            f.write("host\n")
        assert os.listdir(mnt) == ["host-only.txt"]  # the host sees its new mount
        open(sb.ws + "/go", "w").close()
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if mounted:
            subprocess.run(["umount", mnt], check=True)
    with open(sb.ws + "/before.txt") as f:
        before = f.read()
    with open(sb.ws + "/after.txt") as f:
        after = f.read()
    assert before.startswith("under.txt\n")
    assert after == before


# ---------------------------------------------------------------------------
# file descriptors

FD_CHECK = r'''
import errno, os, sys
n = int(sys.argv[1])
print(sorted(int(x) for x in os.listdir("/proc/self/fd")))
print(os.path.lexists("/proc/self/fd/%d" % n))
try:
    print(os.read(n, 100))
except OSError as e:
    print(errno.errorcode[e.errno])
'''


def test_fd_left_open_by_the_caller_is_not_visible(sb):
    path = sb.write("outside/fd-secret.txt", "SECRET-FD\n")
    s = sb.settings({"filesystem": {"denyRead": [path]}})
    fd = os.open(path, os.O_RDONLY)
    # A free number well above what pytest's own fixtures hold: dup2 onto a
    # fixed number could close one of theirs, or fail with EBUSY while
    # another thread is opening that very number.
    n = fcntl.fcntl(fd, fcntl.F_DUPFD, 300)  # inheritable, no O_CLOEXEC
    os.close(fd)
    try:
        # control: without cordon the child does get the descriptor
        ctl = subprocess.run(as_caller(sb, [PY, "-c", FD_CHECK, str(n)]), pass_fds=(n,),
                             capture_output=True, text=True, timeout=30)
        assert ctl.stdout.splitlines()[1:] == ["True", "b'SECRET-FD\\n'"], ctl.stderr
        os.lseek(n, 0, os.SEEK_SET)
        p = sb.run("-s", s, "--", PY, "-c", FD_CHECK, str(n), pass_fds=(n,))
        # listdir itself holds fd 3
        assert p.stdout == "[0, 1, 2, 3]\nFalse\nEBADF\n", p.stderr
        p = shx(sb, 'ls /proc/self/fd; test -e /proc/self/fd/%d || echo no-%d' % (n, n),
                opts=("-s", s), pass_fds=(n,))
        assert p.stdout == "0\n1\n2\n3\nno-%d\n" % n, p.stderr
    finally:
        os.close(n)


# ---------------------------------------------------------------------------
# session and terminal

SESSION_CHECK = r'''
import errno, fcntl, os, termios
print("leader", os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid())
try:
    os.close(os.open("/dev/tty", os.O_RDWR))
    print("tty OK")
except OSError as e:
    print("tty", errno.errorcode[e.errno])
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"#")
    print("tiocsti OK")
except OSError as e:
    print("tiocsti", errno.errorcode[e.errno])
'''


def run_on_pty(argv, env):
    """Run argv with a new pty as its controlling terminal and stdin."""
    master, slave = os.openpty()
    try:
        def make_ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        return subprocess.run(argv, stdin=slave, capture_output=True, text=True, env=env,
                              start_new_session=True, preexec_fn=make_ctty, timeout=30)
    finally:
        os.close(slave)
        os.close(master)


def test_new_session_without_controlling_terminal(sb):
    p = sb.run("--", PY, "-c", "import os; print(os.getsid(0) == os.getpid())")
    assert p.stdout == "True\n"
    # control: the same check in a process that does have the pty as its
    # controlling terminal can open /dev/tty and push input into it
    ctl = run_on_pty(as_caller(sb, [PY, "-c", SESSION_CHECK]), sb.env())
    ctl_lines = ctl.stdout.splitlines()
    assert ctl_lines[:2] == ["leader True True", "tty OK"], ctl.stderr
    p = run_on_pty(sb.argv(["--", PY, "-c", SESSION_CHECK]), sb.env())
    lines = p.stdout.splitlines()
    assert lines[:2] == ["leader True True", "tty ENXIO"], p.stderr
    if ctl_lines[2] == "tiocsti OK":  # not when dev.tty.legacy_tiocsti is 0 (EIO)
        assert lines[2] == "tiocsti EPERM"
    p = run_on_pty(sb.argv(["--", "/bin/sh", "-c", "exec 3</dev/tty"]), sb.env())
    assert p.stderr == "/bin/sh: 1: cannot open /dev/tty: No such device or address\n"


TTY_CHECK = r"""
import os
for fd in (0, 1, 2):
    try:
        print(fd, os.ttyname(fd))
    except OSError as e:
        print(fd, e.strerror)
st, ft = os.stat("/dev/console"), os.fstat(0)
print("same", (st.st_dev, st.st_ino, st.st_rdev) == (ft.st_dev, ft.st_ino, ft.st_rdev))
with open("/dev/console", "w") as f:
    f.write("via console\n")
"""


def test_caller_terminal_is_dev_console(sb):
    """srt (bwrap --dev) binds the caller's terminal at /dev/console, so
    ttyname(3) finds the command's terminal (`tty`, GPG_TTY=$(tty)); without
    it `tty` said "not a tty" and os.ttyname failed with ENODEV. script(1)
    runs as the test's user, so the pty is that user's own."""
    inner = "%s -- /bin/sh -c 'tty; exec %s -c \"$0\"' '%s'" % (
        sb.bin, PY, TTY_CHECK.replace("'", "'\\''"))
    p = subprocess.run(sb.argv_plain(["script", "-qec", inner, "/dev/null"]), cwd=sb.ws,
                       env=sb.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    out = p.stdout.replace("\r\n", "\n")
    assert p.returncode == 0, (out, p.stderr)
    assert out == ("/dev/console\n0 /dev/console\n1 /dev/console\n2 /dev/console\n"
                   "same True\nvia console\n"), p.stderr


CONSOLE_ON_STDOUT = r"""
import os
try:
    os.ttyname(0)
except OSError as e:
    print(0, e.strerror)
print(1, os.ttyname(1))
print(os.path.samestat(os.stat("/dev/console"), os.fstat(1)))
try:
    open("/dev/tty")
except OSError as e:
    print("tty", e.strerror)
"""


def test_dev_console_is_the_first_terminal_among_stdio(sb):
    """stdin a pipe, stdout a pty: the pty (fd 1) is bound; still no
    controlling terminal (/dev/tty is ENXIO)."""
    master, slave = os.openpty()
    try:
        if sb.user == "user":
            os.fchown(slave, sb.uid, sb.gid)
        p = subprocess.run(sb.argv(["--", PY, "-c", CONSOLE_ON_STDOUT]), cwd=sb.ws,
                           env=sb.env(), input=b"", stdout=slave, stderr=subprocess.PIPE,
                           timeout=60)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0, p.stderr
    assert out.decode().replace("\r\n", "\n") == (
        "0 Inappropriate ioctl for device\n1 /dev/console\nTrue\n"
        "tty No such device or address\n")


def test_terminal_given_read_only_is_not_bound(sb):
    """/dev is writable in the view: binding a terminal the caller gave only
    for reading would let the command write to it. Not bound."""
    master, slave = os.openpty()
    ro = os.open(os.ttyname(slave), os.O_RDONLY | os.O_NOCTTY)
    try:
        if sb.user == "user":
            os.fchown(slave, sb.uid, sb.gid)
        p = subprocess.run(
            sb.argv(["--", "/bin/sh", "-c",
                     "tty; test -e /dev/console || echo absent; echo x > /proc/self/fd/0"]),
            cwd=sb.ws, env=sb.env(), stdin=ro, capture_output=True, text=True, timeout=60)
    finally:
        for fd in (ro, slave, master):
            os.close(fd)
    assert p.stdout == "not a tty\nabsent\n", (p.stdout, p.stderr)
    assert "Permission denied" in p.stderr, p.stderr


def test_no_terminal_no_dev_console(sb):
    p = shx(sb, "tty; test -e /dev/console || echo absent", stdin=subprocess.DEVNULL)
    assert p.stdout == "not a tty\nabsent\n", p.stderr


# ---------------------------------------------------------------------------
# namespaces

NAMESPACES = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"]


def test_every_namespace_is_new(sb):
    p = sb.run("--", PY, "-c", "import os, sys; print(' '.join(os.readlink('/proc/self/ns/' + n) "
               "for n in sys.argv[1:]))", *NAMESPACES)
    inside = p.stdout.split()
    assert len(inside) == len(NAMESPACES), p.stderr
    for n, ns in zip(NAMESPACES, inside):
        assert ns.startswith(n + ":[")
        assert ns != os.readlink("/proc/self/ns/" + n), n


def test_host_ipc_objects_are_not_visible(sb):
    out = subprocess.run(["ipcmk", "-M", "4096", "-p", "0600"], capture_output=True, text=True,
                         check=True).stdout
    shmid = out.split(":")[1].strip()
    try:
        with open("/proc/sysvipc/shm") as f:
            assert any(line.split()[1] == shmid for line in f.readlines()[1:])
        p = sb.run("--", "cat", "/proc/sysvipc/shm")
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines()[1:] == []
        p = sb.run("--", "ipcrm", "-m", shmid)
        assert p.stderr == "ipcrm: invalid id (%s)\n" % shmid
    finally:
        subprocess.run(["ipcrm", "-m", shmid], check=True)


# ---------------------------------------------------------------------------
# the sandbox's init

def test_init_is_out_of_the_commands_reach(sb):
    """init holds the socket to the supervisor: the command must not be able
    to take its fds, memory, root or environment (init is not dumpable)."""
    p = sb.run("--", PY, "-c", r'''
import errno, os
def t(f, *a):
    try:
        f(*a)
        return "OK"
    except OSError as e:
        return errno.errorcode[e.errno]
out = []
for n in range(5):
    out.append(t(os.readlink, "/proc/1/fd/%d" % n))
    out.append(t(os.open, "/proc/1/fd/%d" % n, os.O_RDWR))
for f in ("root", "cwd", "exe"):
    out.append(t(os.readlink, "/proc/1/" + f))
for f in ("environ", "mem", "maps"):
    out.append(t(lambda p: open(p, "rb").read(1), "/proc/1/" + f))
print(" ".join(out))
''')
    got = p.stdout.split()
    assert len(got) == 16, p.stderr
    # /proc/1/fd/N: EACCES, or ENOENT when init has no descriptor N (the kernel
    # looks the number up before the access check); never a result.
    assert all(r in ("EACCES", "ENOENT") for r in got[:10]), got
    assert got[10:] == ["EACCES"] * 6, got


# ---------------------------------------------------------------------------
# environment

def test_environment_passes_through_with_sandbox_markers(sb):
    p = sb.run("--", PY, "-c", "import os, json; print(json.dumps(dict(os.environ)))",
               env={"CORDON_IT_VAR": "kept value", "TMPDIR": "/var/tmp",
                    "SANDBOX_RUNTIME": "0"})
    env = json.loads(p.stdout)
    assert env["CORDON_IT_VAR"] == "kept value"
    assert env["HOME"] == sb.home and env["PATH"] == sb.env()["PATH"]
    assert env["SANDBOX_RUNTIME"] == "1"
    assert env["TMPDIR"] == "/tmp"


# ---------------------------------------------------------------------------
# network

NO_NETWORK_PROBE = r'''
import errno, socket
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno], e.strerror)
'''


def test_no_network(sb):
    # Transparent capture (on by default) routes nothing but the synthetic
    # ranges and allowed addresses: an address the policy does not allow is
    # unreachable at once (test_transparent.py has the rest).
    p = sb.run("--", PY, "-c", NO_NETWORK_PROBE)
    assert p.stdout == "EHOSTUNREACH No route to host\n", p.stderr
    p = sb.run("--", "cat", "/proc/net/dev")
    ifaces = [line.split(":")[0].strip() for line in p.stdout.splitlines()[2:]]
    assert ifaces == ["lo"]
    # Without capture the namespace has no route at all.
    s = sb.settings({"network": {"transparent": False}})
    p = sb.run("-s", s, "--", PY, "-c", NO_NETWORK_PROBE)
    assert p.stdout == "ENETUNREACH Network is unreachable\n", p.stderr


def test_host_loopback_is_not_reachable(sb):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        p = sb.run("--", PY, "-c", r'''
import errno, socket, sys
port = int(sys.argv[1])
try:
    socket.create_connection(("127.0.0.1", port), timeout=5)
    print("host server reached")
except OSError as e:
    print(errno.errorcode[e.errno], e.strerror)
# the host's listener is not in this network namespace's socket table ...
print(open("/proc/net/tcp").read().count(":%04X " % port))
# ... and the sandbox's own loopback works: the same port is free here
s = socket.socket()
s.bind(("127.0.0.1", port))
s.listen(1)
c = socket.create_connection(("127.0.0.1", port), timeout=5)
a, _ = s.accept()
c.sendall(b"ping")
print(a.recv(4).decode())
''', str(port))
        assert p.stdout == "ECONNREFUSED Connection refused\n0\nping\n", p.stderr
        srv.setblocking(False)
        with pytest.raises(BlockingIOError):
            srv.accept()  # nothing ever arrived on the host's side
    finally:
        srv.close()
