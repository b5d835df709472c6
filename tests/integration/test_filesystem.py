"""The filesystem view (issue: foundation): read rules, write rules, literal
entries, `~` and relative paths, the fresh /dev, /proc and /tmp,
filesystem.disabled and the embedded default policy. Every test runs as root
and as uid 65534 (the `sb` fixture) and checks the errno of each refused
operation, from a real tool and from python3.

The harness's tree lives under the host's /tmp, which the sandbox replaces by a
private tmpfs, so the settings below list sb.base under allowRead to make the
tree visible (read-only) and build the rules inside it.
"""
import os
import shutil
import subprocess
import tempfile

import pytest

from helpers import PY, own_tree, probe, shx

# ---------------------------------------------------------------------------
# reads

SECRETS = ("SECRET-FILE", "SECRET-A", "SECRET-B", "SECRET-C")


def read_tree(sb):
    """outside/
         pub.txt                 readable
         secret.txt              denyRead (a file)
         closed/c.txt            denyRead (a directory, nothing re-opened)
         denied/a.txt            denyRead (a directory ...)
         denied/open/visible.txt   ... with allowRead inside it
         denied/open/deeper/b.txt  ... and a deeper denyRead inside that
    """
    o = sb.outside
    sb.write("outside/pub.txt", "public\n")
    sb.write("outside/secret.txt", "SECRET-FILE\n")
    sb.write("outside/closed/c.txt", "SECRET-C\n")
    sb.write("outside/denied/a.txt", "SECRET-A\n")
    sb.write("outside/denied/open/visible.txt", "VISIBLE\n")
    sb.write("outside/denied/open/deeper/b.txt", "SECRET-B\n")
    own_tree(sb, o)
    return sb.settings({"filesystem": {
        "allowRead": [sb.base, o + "/denied/open"],
        "denyRead": [o + "/secret.txt", o + "/closed", o + "/denied",
                     o + "/denied/open/deeper"],
    }})


def assert_no_secret(p):
    for s in SECRETS:
        assert s not in p.stdout and s not in p.stderr


def test_reads_are_allowed_outside_deny_rules(sb):
    s = read_tree(sb)
    p = shx(sb, 'cat outside/pub.txt /etc/passwd >/dev/null && cat outside/pub.txt && '
            'ls /usr/bin/env', opts=("-s", s), cwd=sb.base)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "public\n/usr/bin/env\n"


def test_denied_file_is_eacces_and_never_empty(sb):
    s = read_tree(sb)
    f = sb.outside + "/secret.txt"
    p = shx(sb, 'cat "$1"; echo "rc=$?"', f, opts=("-s", s))
    assert p.stdout == "rc=1\n"
    assert p.stderr == "cat: %s: Permission denied\n" % f
    r = probe(sb, [["read", f], ["read", sb.outside + "/pub.txt"]], "-s", s)
    assert r == [("EACCES", None), ("OK", "public\n")]
    # python's PermissionError is EACCES, not an empty read
    p = sb.run("-s", s, "--", PY, "-c",
               "import sys\ntry:\n open(sys.argv[1]).read(); print('read')\n"
               "except PermissionError as e: print('PermissionError', e.errno)", f)
    assert p.stdout == "PermissionError 13\n"


def test_denied_directory_is_eacces(sb):
    s = read_tree(sb)
    d = sb.outside + "/closed"
    p = shx(sb, 'ls "$1"; echo "ls=$?"; cat "$1/c.txt"; echo "cat=$?"', d, opts=("-s", s))
    assert p.stdout == "ls=2\ncat=1\n"
    assert p.stderr == ("ls: cannot open directory '%s': Permission denied\n"
                        "cat: %s/c.txt: Permission denied\n" % (d, d))
    r = probe(sb, [["listdir", d], ["read", d + "/c.txt"]], "-s", s)
    assert r == [("EACCES", None), ("EACCES", None)]
    assert_no_secret(p)


def test_allow_read_reopens_inside_denied_and_deeper_deny_wins(sb):
    s = read_tree(sb)
    d = sb.outside + "/denied"
    p = shx(sb, 'cat "$1/open/visible.txt"; ls "$1/open"; '
            'ls "$1"; cat "$1/open/deeper/b.txt"; ls "$1/open/deeper"', d, opts=("-s", s))
    assert p.stdout == "VISIBLE\ndeeper\nvisible.txt\n"
    assert p.stderr == (
        "ls: cannot open directory '%s': Permission denied\n"
        "cat: %s/open/deeper/b.txt: Permission denied\n"
        "ls: cannot open directory '%s/open/deeper': Permission denied\n" % (d, d, d))
    assert_no_secret(p)
    r = probe(sb, [["read", d + "/open/visible.txt"], ["listdir", d],
                   ["read", d + "/open/deeper/b.txt"], ["listdir", d + "/open/deeper"],
                   ["read", d + "/a.txt"]], "-s", s)
    # A denied directory that holds a re-opened path is traversable but not
    # listable, and its own files are simply not there (the mask is empty):
    # ENOENT, which the issue allows beside EACCES; never the content.
    assert r == [("OK", "VISIBLE\n"), ("EACCES", None), ("EACCES", None), ("EACCES", None),
                 ("ENOENT", None)]


def test_allow_read_reopens_a_single_file(sb):
    sb.write("outside/d/open.txt", "OPEN\n")
    sb.write("outside/d/closed.txt", "SECRET-C\n")
    own_tree(sb, sb.outside)
    d = sb.outside + "/d"
    s = sb.settings({"filesystem": {"allowRead": [sb.base, d + "/open.txt"],
                                    "denyRead": [d]}})
    r = probe(sb, [["read", d + "/open.txt"], ["read", d + "/closed.txt"], ["listdir", d],
                   ["write", d + "/open.txt", "x"]], "-s", s)
    assert r == [("OK", "OPEN\n"), ("ENOENT", None), ("EACCES", None), ("EROFS", None)]


def test_masks_cannot_be_chmodded_or_written(sb):
    """The masks belong to the caller's uid inside; chmod must still fail."""
    s = read_tree(sb)
    o = sb.outside
    p = shx(sb, 'chmod 644 "$1/secret.txt"; chmod 755 "$1/closed"; '
            'echo x > "$1/secret.txt"; cat "$1/secret.txt"', o, opts=("-s", s))
    assert p.stderr == (
        "chmod: changing permissions of '%s/secret.txt': Read-only file system\n"
        "chmod: changing permissions of '%s/closed': Read-only file system\n"
        "sh: 1: cannot create %s/secret.txt: Read-only file system\n"
        "cat: %s/secret.txt: Permission denied\n" % (o, o, o, o))
    r = probe(sb, [["chmod", o + "/closed", "755"], ["create", o + "/closed/new"],
                   ["read", o + "/closed/c.txt"]], "-s", s)
    # creating inside the mask: its mode 000 refuses the lookup first
    assert r == [("EROFS", None), ("EACCES", None), ("EACCES", None)]
    with open(o + "/secret.txt") as f:
        assert f.read() == "SECRET-FILE\n"


def test_deny_read_covering_the_cwd_under_tmp_is_honoured(sb):
    """Outside /tmp cordon refuses such a policy (exit 125, the cwd is not
    visible); under /tmp it must not quietly expose the denied directory."""
    sb.write("home/ws/secret.txt", "SECRET-FILE\n")
    for denied in (sb.ws, sb.home):
        s = sb.settings({"filesystem": {"denyRead": [denied]}})
        p = shx(sb, "cat secret.txt && touch ran-marker", opts=("-s", s))
        assert "SECRET-FILE" not in p.stdout
        if p.returncode == 125:
            assert not os.path.exists(sb.ws + "/ran-marker")
        else:
            assert "cat: secret.txt: Permission denied" in p.stderr


def test_deny_read_covering_the_cwd_outside_tmp_refuses_to_run(sb, visible_home):
    """The working directory itself is denied: cordon fails (125, one line)
    and the command never runs, rather than running with the cwd exposed."""
    ws = visible_home + "/ws"
    for denied in (ws, visible_home):
        s = sb.settings({"filesystem": {"denyRead": [denied], "allowWrite": ["/var/tmp"]}})
        p = sb.run("-s", s, "--", "/bin/sh", "-c", "echo RAN; touch /var/tmp/ran-%s" % sb.user,
                   cwd=ws)
        assert p.returncode == 125
        assert p.stderr.startswith("cordon: sandbox setup failed: ")
        assert p.stderr.count("\n") == 1 and "working directory" in p.stderr
        assert p.stdout == ""
        assert not os.path.exists("/var/tmp/ran-%s" % sb.user)


# ---------------------------------------------------------------------------
# writes

def write_tree(sb):
    o = sb.outside
    sb.write("outside/ro/existing.txt", "original\n")
    sb.mkdir("outside/ro/subdir")
    sb.mkdir("outside/w/locked")
    sb.write("outside/w/locked/keep.txt", "locked\n")
    sb.mkdir("outside/anc/inner")
    sb.write("home/plain.txt", "home file\n")
    own_tree(sb, o)
    return sb.settings({"filesystem": {
        "allowRead": [sb.base],
        "allowWrite": [o + "/w", o + "/anc/inner"],
        "denyWrite": [o + "/w/locked", o + "/anc"],
    }})


def test_writes_succeed_only_under_allow_write(sb):
    s = write_tree(sb)
    o = sb.outside
    r = probe(sb, [["write", o + "/w/new.txt", "made inside"], ["mkdir", o + "/w/newdir"],
                   ["rename", o + "/w/new.txt", o + "/w/newdir/moved.txt"],
                   ["write", o + "/w/gone.txt"], ["unlink", o + "/w/gone.txt"]], "-s", s)
    assert r == [("OK", None)] * 5
    with open(o + "/w/newdir/moved.txt") as f:
        assert f.read() == "made inside"
    assert not os.path.exists(o + "/w/gone.txt")


def test_writes_outside_the_roots_are_erofs(sb):
    s = write_tree(sb)
    o = sb.outside
    ro = o + "/ro"
    r = probe(sb, [
        ["create", ro + "/new.txt"],
        ["write", ro + "/existing.txt", "changed"],
        ["append", ro + "/existing.txt", "more"],
        ["truncate", ro + "/existing.txt"],
        ["mkdir", ro + "/newdir"],
        ["rename", ro + "/existing.txt", ro + "/renamed.txt"],
        ["unlink", ro + "/existing.txt"],
        ["rmdir", ro + "/subdir"],
        ["symlink", "/etc/passwd", ro + "/link"],
        ["chmod", ro + "/existing.txt", "777"],
        ["create", sb.home + "/new.txt"],
        ["write", sb.home + "/plain.txt", "changed"],
        ["create", "/etc/cordon-it-should-not-exist"],
        ["create", "/cordon-it-should-not-exist"],
        ["create", "/usr/cordon-it-should-not-exist"],
    ], "-s", s)
    assert r == [("EROFS", None)] * 15
    with open(ro + "/existing.txt") as f:
        assert f.read() == "original\n"
    with open(sb.home + "/plain.txt") as f:
        assert f.read() == "home file\n"
    assert sorted(os.listdir(ro)) == ["existing.txt", "subdir"]
    for p in ("/etc/cordon-it-should-not-exist", "/cordon-it-should-not-exist",
              "/usr/cordon-it-should-not-exist", sb.home + "/new.txt"):
        assert not os.path.exists(p)


def test_shell_tools_report_read_only_file_system(sb):
    s = write_tree(sb)
    ro = sb.outside + "/ro"
    p = shx(sb, 'cd "$1" && touch new; mkdir nd; mv existing.txt other.txt; rm existing.txt; '
            'echo x > existing.txt; rmdir subdir', ro, opts=("-s", s))
    assert p.stderr == (
        "touch: cannot touch 'new': Read-only file system\n"
        "mkdir: cannot create directory 'nd': Read-only file system\n"
        "mv: cannot move 'existing.txt' to 'other.txt': Read-only file system\n"
        "rm: cannot remove 'existing.txt': Read-only file system\n"
        "sh: 1: cannot create existing.txt: Read-only file system\n"
        "rmdir: failed to remove 'subdir': Read-only file system\n")
    assert sorted(os.listdir(ro)) == ["existing.txt", "subdir"]


def test_deny_write_wins_inside_allow_write(sb):
    s = write_tree(sb)
    lk = sb.outside + "/w/locked"
    r = probe(sb, [["create", lk + "/new"], ["write", lk + "/keep.txt", "x"],
                   ["unlink", lk + "/keep.txt"], ["read", lk + "/keep.txt"]], "-s", s)
    assert r == [("EROFS", None), ("EROFS", None), ("EROFS", None), ("OK", "locked\n")]
    p = shx(sb, 'echo x > "$1/new"', lk, opts=("-s", s))
    assert p.stderr == "sh: 1: cannot create %s/new: Read-only file system\n" % lk
    assert os.listdir(lk) == ["keep.txt"]


def test_deny_write_at_an_ancestor_makes_the_allow_write_read_only(sb):
    s = write_tree(sb)
    inner = sb.outside + "/anc/inner"
    r = probe(sb, [["create", inner + "/new"], ["mkdir", inner + "/d"],
                   ["create", sb.outside + "/anc/new"], ["listdir", inner]], "-s", s)
    assert r == [("EROFS", None), ("EROFS", None), ("EROFS", None), ("OK", [])]
    assert os.listdir(inner) == []


@pytest.mark.parametrize("ancestor", ["home", "/"])
def test_deny_write_at_an_ancestor_of_the_cwd(sb, ancestor):
    """The default policy's allowWrite "." loses to a denyWrite above the cwd
    (here a cwd bound through the private /tmp); the private /tmp and
    /dev/shm are not host paths and stay writable."""
    target = sb.home if ancestor == "home" else "/"
    r = probe(sb, [["create", sb.ws + "/new"], ["create", "/tmp/new"],
                   ["create", "/dev/shm/new"]], "--deny-write", target)
    assert r == [("EROFS", None), ("OK", None), ("OK", None)]
    assert not os.path.exists(sb.ws + "/new")


def test_deny_write_on_a_file_cannot_be_bypassed_by_link_or_rename(sb):
    """A file-level denyWrite inside a writable root: the file cannot be
    written, replaced, removed or hard-linked into the writable part."""
    w = sb.outside + "/w"
    sb.write("outside/w/protected.txt", "keep me\n")
    own_tree(sb, w)
    s = sb.settings({"filesystem": {"allowRead": [sb.base], "allowWrite": [w],
                                    "denyWrite": [w + "/protected.txt"]}})
    r = probe(sb, [["write", w + "/protected.txt", "x"], ["unlink", w + "/protected.txt"],
                   ["write", w + "/other.txt", "y"],
                   ["rename", w + "/other.txt", w + "/protected.txt"],
                   ["link", w + "/protected.txt", w + "/hardlink.txt"]], "-s", s)
    assert r == [("EROFS", None), ("EBUSY", None), ("OK", None), ("EBUSY", None),
                 ("EXDEV", None)]
    with open(w + "/protected.txt") as f:
        assert f.read() == "keep me\n"
    assert not os.path.exists(w + "/hardlink.txt")


# ---------------------------------------------------------------------------
# symlinks on the way to allowed paths

MERGED_USR = all(os.path.islink(d) for d in ("/bin", "/lib"))


@pytest.mark.skipif(not MERGED_USR, reason="needs a merged-/usr host (/bin -> usr/bin)")
def test_deny_root_allow_system_dirs_keeps_merged_usr_symlinks(sb):
    """denyRead "/" with allowRead of /usr, /bin, /lib, /lib64, /etc and ".":
    /bin and friends are symlinks into /usr on the host; the empty root must
    hold them again (same text), or nothing runs (`sh: command not found`,
    exit 127). Names outside the allowed ones stay unreadable: ENOENT, since
    the root is an empty tmpfs that holds only the re-allowed names (mode
    0111: traversable, not listable, so `ls /` is EACCES)."""
    s = sb.settings({"filesystem": {"denyRead": ["/"], "allowRead": [
        "/usr", "/bin", "/lib", "/lib64", "/etc", "."]}})
    p = sb.run("-s", s, "--", "sh", "-c", "ls /bin/sh && cat /etc/hostname")
    assert p.returncode == 0, p.stderr
    with open("/etc/hostname") as f:
        assert p.stdout == "/bin/sh\n" + f.read()
    links = [d for d in ("/bin", "/lib", "/lib64") if os.path.islink(d)]
    r = probe(sb, [["readlink", d] for d in links] +
              [["listdir", "/var"], ["read", "/root/.profile"], ["listdir", "/home"],
               ["exists", "/sbin"], ["listdir", "/"]], "-s", s)
    assert r == [("OK", os.readlink(d)) for d in links] + [
        ("ENOENT", None), ("ENOENT", None), ("ENOENT", None), ("OK", False), ("EACCES", None)]


def test_symlinks_in_the_path_of_allowed_entries_are_recreated(sb):
    """In a denied directory: an allowRead entry through a relative link, a
    chain of links (absolute, then relative through a directory and ".."; the
    directory is made again, empty), and an allowWrite
    entry that is itself a link; each link is recreated with its own text and
    its target bound back. The rest of the denied directory stays hidden."""
    o = sb.outside
    sb.write("outside/real/sub/file.txt", "via-alias\n")
    sb.write("outside/real/other.txt", "SECRET-OTHER\n")
    sb.write("outside/deep/x/chained.txt", "via-chain\n")
    sb.mkdir("outside/deep/y")  # only passed through ("..")
    sb.mkdir("outside/wreal")
    sb.write("outside/hidden.txt", "SECRET-HIDDEN\n")
    own_tree(sb, o)
    os.symlink("real", o + "/alias")
    os.symlink(o + "/hop", o + "/chain")
    os.symlink("deep/y/../x", o + "/hop")
    os.symlink("wreal", o + "/walias")
    s = sb.settings({"filesystem": {
        "allowRead": [sb.base, o + "/alias/sub", o + "/chain/chained.txt"],
        "denyRead": [o],
        "allowWrite": [o + "/walias"],
    }})
    r = probe(sb, [["read", o + "/alias/sub/file.txt"], ["readlink", o + "/alias"],
                   ["read", o + "/chain/chained.txt"], ["readlink", o + "/chain"],
                   ["readlink", o + "/hop"],
                   ["write", o + "/walias/new.txt", "w"], ["readlink", o + "/walias"],
                   ["read", o + "/real/other.txt"], ["read", o + "/hidden.txt"],
                   ["listdir", o]], "-s", s)
    assert r == [("OK", "via-alias\n"), ("OK", "real"), ("OK", "via-chain\n"),
                 ("OK", o + "/hop"), ("OK", "deep/y/../x"), ("OK", None),
                 ("OK", "wreal"), ("ENOENT", None), ("ENOENT", None), ("EACCES", None)]
    with open(o + "/wreal/new.txt") as f:
        assert f.read() == "w"


# ---------------------------------------------------------------------------
# literal entries, `~` and relative paths

def test_literal_path_entries(sb):
    o = sb.outside
    sb.write("outside/we*ird/secret.txt", "SECRET-FILE\n")
    sb.write("outside/weXird/plain.txt", "plain\n")  # what the glob would also match
    sb.mkdir("outside/w[1]")
    own_tree(sb, o)
    s = sb.settings({"filesystem": {
        "allowRead": [sb.base],
        "denyRead": [{"path": o + "/we*ird", "literal": True}],
        "allowWrite": [{"path": o + "/w[1]", "literal": True}],
    }})
    r = probe(sb, [["read", o + "/we*ird/secret.txt"], ["listdir", o + "/we*ird"],
                   ["read", o + "/weXird/plain.txt"], ["write", o + "/w[1]/f", "ok"],
                   ["create", o + "/w1"]], "-s", s)
    assert r == [("EACCES", None), ("EACCES", None), ("OK", "plain\n"), ("OK", None),
                 ("EROFS", None)]
    with open(o + "/w[1]/f") as f:
        assert f.read() == "ok"
    p = shx(sb, 'cat "$1/we*ird/secret.txt"', o, opts=("-s", s))
    assert p.stderr == "cat: '%s/we*ird/secret.txt': Permission denied\n" % o


def test_tilde_and_relative_paths_in_settings(sb):
    sb.write("home/cred.txt", "SECRET-FILE\n")
    sb.write("home/plain.txt", "plain\n")
    sb.write("home/ws/rel-secret.txt", "SECRET-A\n")
    sb.write("home/ws/other-secret.txt", "SECRET-B\n")
    sb.mkdir("home/ws/wdir")
    sb.write("outside/rel-secret.txt", "SECRET-C\n")
    sb.mkdir("outside/wdir")
    own_tree(sb, sb.base + "/home")
    own_tree(sb, sb.outside)
    s = sb.settings({"filesystem": {
        "allowRead": [sb.base],
        "denyRead": ["~/cred.txt", "rel-secret.txt", "./sub/../other-secret.txt"],
        "allowWrite": ["wdir"],
    }})
    h, ws, o = sb.home, sb.ws, sb.outside
    ops = [["read", h + "/cred.txt"], ["read", h + "/plain.txt"],
           ["read", ws + "/rel-secret.txt"], ["read", ws + "/other-secret.txt"],
           ["read", o + "/rel-secret.txt"],
           ["write", ws + "/wdir/f"], ["write", o + "/wdir/f"]]
    # ~ is the caller's $HOME; relative paths are against the working directory
    r = probe(sb, ops, "-s", s, cwd=ws)
    assert r == [("EACCES", None), ("OK", "plain\n"), ("EACCES", None), ("EACCES", None),
                 ("OK", "SECRET-C\n"), ("OK", None), ("EROFS", None)]
    # the same file from another directory and another HOME
    r = probe(sb, ops, "-s", s, cwd=o, env={"HOME": o})
    assert r == [("OK", "SECRET-FILE\n"), ("OK", "plain\n"), ("OK", "SECRET-A\n"),
                 ("OK", "SECRET-B\n"), ("EACCES", None), ("EROFS", None), ("OK", None)]


# ---------------------------------------------------------------------------
# /dev, /proc, /tmp

# /dev/cordon is cordon's own binary, read-only, for helpers such as the ssh
# ProxyCommand ("cordon connect").
# /dev/console is the caller's terminal, only when stdin, stdout or stderr is
# one (tests/integration/test_isolation.py).
DEV_ENTRIES = ["cordon", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr",
               "stdin", "stdout", "tty", "urandom", "zero"]


def test_fresh_dev_has_exactly_the_expected_entries(sb):
    p = sb.run("--", PY, "-c", r'''
import os, stat
for n in sorted(os.listdir("/dev")):
    st = os.lstat("/dev/" + n)
    kind = "c" if stat.S_ISCHR(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else \
           "l " + os.readlink("/dev/" + n) if stat.S_ISLNK(st.st_mode) else \
           "f %o" % (st.st_mode & 0o7777) if stat.S_ISREG(st.st_mode) else "?"
    print(n, kind)
print("pts:", sorted(os.listdir("/dev/pts")))
''', stdin=subprocess.DEVNULL)  # a terminal on stdin would add /dev/console
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "cordon f 755", "fd l /proc/self/fd", "full c", "null c", "ptmx l pts/ptmx", "pts d", "random c",
        "shm d", "stderr l /proc/self/fd/2", "stdin l /proc/self/fd/0",
        "stdout l /proc/self/fd/1", "tty c", "urandom c", "zero c",
        # a new devpts instance: none of the host's terminals
        "pts: ['ptmx']",
    ]


def test_dev_nodes_work(sb):
    p = shx(sb, 'echo x > /dev/null && echo null-ok; head -c 8 /dev/zero | od -An -tx1; '
              '/bin/echo x > /dev/full; head -c 16 /dev/urandom | wc -c; '
              'echo shm > /dev/shm/f && cat /dev/shm/f; touch /dev/newnode')
    assert p.stdout == "null-ok\n 00 00 00 00 00 00 00 00\n16\nshm\n"
    assert p.stderr == ("/bin/echo: write error: No space left on device\n"
                        "touch: cannot touch '/dev/newnode': Read-only file system\n")
    p = sb.run("--", PY, "-c", r'''
import errno, os
fd = os.open("/dev/full", os.O_WRONLY)
try:
    os.write(fd, b"x")
except OSError as e:
    print(errno.errorcode[e.errno])
m, s = os.openpty()
print(os.ttyname(s), sorted(os.listdir("/dev/pts")))
''')
    assert p.stdout == "ENOSPC\n/dev/pts/0 ['0', 'ptmx']\n", p.stderr


def test_proc_is_the_sandbox_pid_namespace(sb):
    p = sb.run("--", PY, "-c", r'''
import os
pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
print(pids, os.getpid())
print(open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode())
''')
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    # only the sandbox's init (pid 1) and the command itself
    assert lines[0] == "[1, 2] 2"
    assert lines[1] == sb.bin
    # the host's processes (this test runner, for one) are not there
    p = shx(sb, 'test -e /proc/%d && echo visible || echo absent' % os.getpid())
    assert p.stdout == "absent\n"


def test_proc_sys_is_read_only(sb):
    p = shx(sb, 'before=$(cat /proc/sys/kernel/hostname); '
              'echo evil > /proc/sys/kernel/hostname; '
              '[ "$(cat /proc/sys/kernel/hostname)" = "$before" ] && echo unchanged')
    assert p.stderr == "sh: 1: cannot create /proc/sys/kernel/hostname: Read-only file system\n"
    assert p.stdout == "unchanged\n"
    # the value it already has: harmless on the host even if the write got through
    with open("/proc/sys/vm/swappiness") as f:
        same = f.read()
    r = probe(sb, [["write", "/proc/sys/kernel/hostname", "evil"],
                   ["write", "/proc/sys/vm/swappiness", same]])
    assert r == [("EROFS", None), ("EROFS", None)]


def test_rules_cannot_open_up_dev_or_proc(sb):
    """The sandbox's /dev and /proc are its own: rules naming them are ignored,
    so no policy hands the command a host device or a writable /proc/sys."""
    with open("/proc/sys/vm/swappiness") as f:
        same = f.read()
    s = sb.settings({"filesystem": {"allowRead": ["/dev", "/proc"],
                                    "allowWrite": ["/dev", "/proc", "/proc/sys"],
                                    "denyRead": ["/dev/null", "/proc/self"]}})
    p = sb.run("-s", s, "--", PY, "-c", "import os; print(sorted(os.listdir('/dev')))")
    assert p.stdout == "%r\n" % DEV_ENTRIES, p.stderr
    r = probe(sb, [["write", "/proc/sys/vm/swappiness", same], ["create", "/dev/newnode"],
                   ["write", "/dev/null", "x"], ["read", "/proc/self/comm"]], "-s", s)
    assert r == [("EROFS", None), ("EROFS", None), ("OK", None), ("OK", "python3\n")]


@pytest.fixture
def host_tmp_file():
    fd, path = tempfile.mkstemp(prefix="cordon-it-hostfile-", dir="/tmp")
    os.write(fd, b"host tmp\n")
    os.close(fd)
    os.chmod(path, 0o644)
    yield path
    os.unlink(path)


def test_private_tmp(sb, host_tmp_file):
    name = os.path.basename(host_tmp_file)
    inside = "cordon-it-inside-%d" % os.getpid()
    p = shx(sb, 'ls -A /tmp; echo "TMPDIR=$TMPDIR"; cat "/tmp/$1"; '
            'echo in > "/tmp/$2" && cat "/tmp/$2"', name, inside,
            env={"TMPDIR": "/var/tmp"})
    # only the path component that leads to the bound-through cwd
    assert p.stdout == "%s\nTMPDIR=/tmp\nin\n" % os.path.basename(sb.base)
    assert p.stderr == "cat: /tmp/%s: No such file or directory\n" % name
    assert not os.path.exists("/tmp/" + inside)


def test_tmp_as_a_write_root_is_the_hosts(sb, host_tmp_file):
    """allowWrite /tmp: the host's /tmp itself, and the rules still apply in it."""
    sb.write("outside/secret.txt", "SECRET-FILE\n")
    inside = "/tmp/cordon-it-inside-%d-%s" % (os.getpid(), sb.user)
    s = sb.settings({"filesystem": {"allowWrite": ["/tmp"],
                                    "denyRead": [sb.outside + "/secret.txt"]}})
    try:
        r = probe(sb, [["read", host_tmp_file], ["write", inside, "in"],
                       ["read", sb.outside + "/secret.txt"]], "-s", s)
        assert r == [("OK", "host tmp\n"), ("OK", None), ("EACCES", None)]
        with open(inside) as f:
            assert f.read() == "in"
    finally:
        if os.path.exists(inside):
            os.unlink(inside)


def test_cwd_under_tmp_is_bound_through_and_writable(sb):
    sb.write("home/ws/input.txt", "from host\n")
    p = shx(sb, 'pwd; cat input.txt; echo from-inside > output.txt')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "%s\nfrom host\n" % sb.ws
    with open(sb.ws + "/output.txt") as f:
        assert f.read() == "from-inside\n"


def test_missing_rule_paths_are_skipped(sb):
    missing = sb.outside + "/does-not-exist"
    s = sb.settings({"filesystem": {"denyRead": [missing], "allowWrite": [missing + "/w"],
                                    "allowRead": [sb.base]}})
    p = sb.run("-d", "-s", s, "--", "true")
    assert p.returncode == 0, p.stderr
    assert "cordon: debug: denyRead %s: %s (No such file or directory); nothing to do\n" \
        % (missing, missing) in p.stderr
    r = probe(sb, [["create", missing]], "-s", s)
    assert r == [("EROFS", None)]


# ---------------------------------------------------------------------------
# filesystem.disabled

def test_filesystem_disabled_makes_host_writable_but_keeps_fresh_dev_and_proc(sb):
    s = sb.settings({"filesystem": {"disabled": True, "denyRead": [sb.outside]}})
    target = sb.outside + "/written-inside.txt"
    check = r'''
import os
print(" ".join(sorted(os.listdir("/dev"))))
print(sorted(int(d) for d in os.listdir("/proc") if d.isdigit()), os.getpid())
print(open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode())
'''
    p = shx(sb, 'echo disabled > "$1" && echo wrote && exec "$2" -c "$3"', target, PY, check,
            opts=("-s", s), stdin=subprocess.DEVNULL)  # no terminal, no /dev/console
    assert p.returncode == 0, p.stderr
    assert p.stdout == "wrote\n%s\n[1, 2] 2\n%s\n" % (" ".join(DEV_ENTRIES), sb.bin)
    with open(target) as f:
        assert f.read() == "disabled\n"


# ---------------------------------------------------------------------------
# the embedded default policy

CREDENTIALS = {
    ".ssh/id_rsa": "SECRET-SSH\n",
    ".aws/credentials": "SECRET-AWS\n",
    ".netrc": "SECRET-NETRC\n",
    ".docker/config.json": "SECRET-DOCKER\n",
    ".config/gh/hosts.yml": "SECRET-GH\n",
    ".git-credentials": "SECRET-GIT\n",
}


def make_home(sb, home):
    for rel, content in CREDENTIALS.items():
        path = os.path.join(home, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
    with open(home + "/notes.txt", "w") as f:
        f.write("notes\n")
    os.makedirs(home + "/ws", exist_ok=True)
    for root, dirs, files in os.walk(home):
        for n in dirs + files + ["."]:
            p = os.path.join(root, n)
            os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
            sb.own(p)


@pytest.fixture
def visible_home(sb):
    """A home outside the host's /tmp, so that the sandbox sees it (read-only)."""
    home = tempfile.mkdtemp(prefix="cordon-it-home-", dir="/var/tmp")
    os.chmod(home, 0o755)
    sb.own(home)
    make_home(sb, home)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def check_credentials_denied(sb, home, cwd, env):
    script = "; ".join('cat "$HOME/%s"' % rel for rel in CREDENTIALS)
    p = shx(sb, script + '; ls "$HOME/.ssh"', cwd=cwd, env=env)
    assert p.stderr.splitlines() == \
        ["cat: %s/%s: Permission denied" % (home, rel) for rel in CREDENTIALS] + \
        ["ls: cannot open directory '%s/.ssh': Permission denied" % home]
    assert "SECRET" not in p.stdout
    r = probe(sb, [["read", home + "/" + rel] for rel in CREDENTIALS], cwd=cwd, env=env)
    assert r == [("EACCES", None)] * len(CREDENTIALS)


def test_default_policy(sb, visible_home):
    home = visible_home
    ws = home + "/ws"
    env = {"HOME": home, "XDG_CONFIG_HOME": home + "/.config"}
    p = sb.run("-d", "--", "true", cwd=ws, env=env)
    assert "cordon: debug: settings: embedded default policy\n" in p.stderr
    check_credentials_denied(sb, home, ws, env)
    r = probe(sb, [["read", home + "/notes.txt"], ["write", ws + "/made.txt", "ok"],
                   ["create", home + "/outside-cwd.txt"], ["write", home + "/notes.txt", "x"],
                   ["create", "/var/tmp/cordon-it-should-not-exist"]], cwd=ws, env=env)
    assert r == [("OK", "notes\n"), ("OK", None), ("EROFS", None), ("EROFS", None),
                 ("EROFS", None)]
    with open(ws + "/made.txt") as f:
        assert f.read() == "ok"
    assert not os.path.exists(home + "/outside-cwd.txt")
    assert not os.path.exists("/var/tmp/cordon-it-should-not-exist")
    p = shx(sb, 'echo x > "$HOME/outside.txt"', cwd=ws, env=env)
    assert p.stderr == "sh: 1: cannot create %s/outside.txt: Read-only file system\n" % home


def test_implicit_write_paths(sb, visible_home):
    """srt's ~/.npm/_logs and ~/.claude/debug are writable when they exist,
    unless a denyRead covers them."""
    home = visible_home
    for rel in (".npm/_logs", ".claude/debug"):
        os.makedirs(home + "/" + rel)
        own_tree(sb, home + "/" + rel.split("/")[0])
    env = {"HOME": home, "XDG_CONFIG_HOME": home + "/.config"}
    r = probe(sb, [["write", home + "/.npm/_logs/a.log"], ["write", home + "/.claude/debug/b"],
                   ["create", home + "/.npm/other"]], cwd=home + "/ws", env=env)
    assert r == [("OK", None), ("OK", None), ("EROFS", None)]
    s = sb.settings({"filesystem": {"denyRead": ["~/.npm"], "allowWrite": ["."]}})
    r = probe(sb, [["write", home + "/.npm/_logs/c.log"], ["write", home + "/.claude/debug/d"]],
              "-s", s, cwd=home + "/ws", env=env)
    assert r == [("EACCES", None), ("OK", None)]
    assert not os.path.exists(home + "/.npm/_logs/c.log")


def test_default_policy_with_cwd_home_under_tmp(sb):
    """HOME is under the host's /tmp and is the working directory: it is bound
    through writable, and the credential masks still apply inside it."""
    make_home(sb, sb.home)
    check_credentials_denied(sb, sb.home, sb.home, None)
    p = shx(sb, 'echo ok > made.txt && cat made.txt', cwd=sb.home)
    assert p.stdout == "ok\n"
    with open(sb.home + "/made.txt") as f:
        assert f.read() == "ok\n"
