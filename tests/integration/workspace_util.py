"""Helpers for the workspace-protection tests (test_workspace*.py).

Workspace protection (src/sandbox/protect.c) keeps a command from planting
code that runs later outside the sandbox: protected names are bound read-only
over themselves, their ancestors up to the write root are pinned (so renames
and removals fail with EBUSY), and missing names get placeholders that exist
on the host only while a run uses them.

`wprobe` runs a list of filesystem operations inside one sandbox with python3
and returns, per operation, ("OK", value) or the errno name, so a test checks
the exact reason of every refusal. `tool_steps` does the same for real tools
(sh, mv, rm, mkdir, git): each step's output and exit status. `snapshot` is
the full recursive listing (type, mode, size, owner, link target, content
hash) used to prove that a workspace is exactly as it was before a run.
"""
import hashlib
import json
import os
import stat
import subprocess

from helpers import as_caller

PY = "/usr/bin/python3"

# The protected names (protect.c): files, directories, and .claude's items.
FILES = (".gitconfig", ".gitmodules", ".bashrc", ".bash_profile", ".zshrc", ".zprofile",
         ".profile", ".ripgreprc", ".mcp.json", ".envrc")
DIRS = (".vscode", ".idea")
CLAUDE_DIRS = (".claude/commands", ".claude/agents")
CLAUDE_FILES = (".claude/settings.json", ".claude/settings.local.json")
ALL_FILES = FILES + CLAUDE_FILES
ALL_DIRS = DIRS + CLAUDE_DIRS
# What a workspace without any of them gets at the top of a write root: the
# first missing component of each name (.claude as a whole).
TOP_PLACEHOLDER_FILES = FILES
TOP_PLACEHOLDER_DIRS = DIRS + (".claude",)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Cordon Test", "GIT_AUTHOR_EMAIL": "test@cordon.invalid",
    "GIT_COMMITTER_NAME": "Cordon Test", "GIT_COMMITTER_EMAIL": "test@cordon.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}

WPROBE_FUNCS = r'''
import errno, json, os, stat, sys

def run(op, *a):
    if op == "read":
        with open(a[0], "rb") as f:
            return f.read().decode(errors="replace")
    if op == "listdir":
        return sorted(os.listdir(a[0]))
    if op == "write":          # O_WRONLY|O_CREAT|O_TRUNC, as sh's ">"
        with open(a[0], "w") as f:
            f.write(a[1] if len(a) > 1 else "evil\n")
        return None
    if op == "append":         # O_WRONLY|O_CREAT|O_APPEND, as sh's ">>"
        with open(a[0], "a") as f:
            f.write(a[1] if len(a) > 1 else "evil\n")
        return None
    if op == "create":         # O_CREAT|O_EXCL
        os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return None
    if op == "truncate":
        os.truncate(a[0], 0)
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
    if op == "symlink":
        os.symlink(a[0], a[1])
        return None
    if op == "chmod":
        os.chmod(a[0], int(a[1], 8))
        return None
    if op == "stat":           # [type, mode, size of a file] without following a last symlink
        st = os.lstat(a[0])
        t = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else \
            "link" if stat.S_ISLNK(st.st_mode) else "other"
        return [t, "%o" % stat.S_IMODE(st.st_mode), st.st_size if t == "file" else None]
    if op == "readlink":
        return os.readlink(a[0])
    if op == "exists":
        return os.path.lexists(a[0])
    if op == "w_ok":           # access(W_OK): False on a read-only mount
        return os.access(a[0], os.W_OK)
    if op == "cmd":            # [exit status, stdout + stderr]
        import subprocess
        p = subprocess.run(list(a), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return [p.returncode, p.stdout.decode(errors="replace")]
    raise SystemExit("wprobe: unknown op " + op)

def do(ops):
    out = []
    for step in ops:
        try:
            out.append(["OK", run(*step)])
        except OSError as e:
            out.append([errno.errorcode.get(e.errno, str(e.errno)), None])
    return out
'''

WPROBE = WPROBE_FUNCS + r'''
print(json.dumps(do(json.loads(sys.argv[1]))))
'''

# Two phases in one sandbox: the first at start, the second when the host
# says so (a line on stdin), for tests that change the host in between.
HELD = WPROBE_FUNCS + r'''
print(json.dumps(do(json.loads(sys.argv[1]))), flush=True)
print("READY", flush=True)
sys.stdin.readline()
print(json.dumps(do(json.loads(sys.argv[2]))), flush=True)
'''


def wprobe(sb, ops, *opts, cwd=None, env=None, expect_rc=0):
    """Run ops (lists [op, arg, ...]) inside `cordon OPTS -- python3` and return
    a list of (status, value): status "OK" or an errno name (EROFS, EBUSY...)."""
    p = sb.run(*opts, "--", PY, "-c", WPROBE, json.dumps(ops), cwd=cwd, env=env)
    assert p.returncode == expect_rc, "probe: rc=%d\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(res) == len(ops)
    return [tuple(r) for r in res]


def check(sb, expect, *opts, cwd=None, env=None):
    """expect: list of (op, expected status[, expected value]) where op is a
    list. Runs them all in one sandbox; fails with every mismatch listed."""
    ops = [e[0] for e in expect]
    got = wprobe(sb, ops, *opts, cwd=cwd, env=env)
    bad = mismatches(expect, got)
    assert not bad, "as %s:\n" % sb.user + "\n".join(bad)
    return got


# ---- expectations for one protected path ------------------------------------------

class HeldRun:
    """`cordon OPTS -- python3 HELD first second`: runs the first list of
    operations at start, then waits for release(), which runs the second and
    waits for the exit. Results as wprobe's."""

    def __init__(self, sb, first, second, *opts, env=None, cwd=None):
        self.first_ops, self.second_ops = first, second
        self.p = sb.popen(*opts, "--", PY, "-c", HELD, json.dumps(first), json.dumps(second),
                          env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        self.first = self.second = None
        self.rc = None
        self.err = ""

    def wait_ready(self):
        line = self.p.stdout.readline()
        if not line:
            self.finish()
            raise AssertionError("the run ended before its first phase: rc=%s\n%s"
                                 % (self.rc, self.err))
        self.first = [tuple(r) for r in json.loads(line)]
        assert self.p.stdout.readline().strip() == "READY"
        return self.first

    def release(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        self.second = [tuple(r) for r in json.loads(line)] if line.strip() else None
        self.finish()
        return self.second

    def finish(self, timeout=30):
        try:
            _, self.err = self.p.communicate(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        self.rc = self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.communicate(timeout=10)
        except Exception:
            pass


def mismatches(expect, got):
    """Lines naming each step of expect (op, status[, value]) that got differs from."""
    bad = []
    for e, g in zip(expect, got):
        if g[0] != e[1] or (len(e) > 2 and g[1] != e[2]):
            bad.append("%-60s expected %s%s, got %s%s" % (
                json.dumps(e[0]), e[1], (" " + repr(e[2])) if len(e) > 2 else "",
                g[0], (" " + repr(g[1])) if g[1] is not None else ""))
    return bad


def file_ops(path, exists, content=None, decoy=None):
    """Every way to write, create, rename or delete a protected file, with the
    exact errno: writes and creations EROFS (the path is a read-only mount),
    renames and removals EBUSY (it is a mount point)."""
    decoy = decoy or (path + ".decoy")      # same directory: a rename, not EXDEV
    e = [
        (["read", path], "OK", content if exists else ""),
        (["write", path], "EROFS"),
        (["chmod", path, "666"], "EROFS"),
        (["create", path], "EEXIST"),          # the name is taken (by the placeholder)
        (["rename", path, path + ".moved"], "EBUSY"),
        (["unlink", path], "EBUSY"),
        (["write", decoy, "replacement"], "OK"),
        (["rename", decoy, path], "EBUSY"),     # replacing it
        (["symlink", "/etc/passwd", path], "EEXIST"),
        (["unlink", decoy], "OK"),
    ]
    if exists:
        # (Placeholders too: test_append_or_truncate_on_a_placeholder_is_erofs.)
        e.insert(2, (["append", path], "EROFS"))
        e.insert(3, (["truncate", path], "EROFS"))
    return e


def dir_ops(path, existing_file=None, existing_content=None):
    """The same for a protected directory: nothing can be created, changed or
    removed inside it (EROFS), it cannot be renamed or removed (EBUSY)."""
    e = [
        (["write", path + "/settings.json"], "EROFS"),
        (["mkdir", path + "/sub"], "EROFS"),
        (["symlink", "/etc/passwd", path + "/link"], "EROFS"),
        (["chmod", path, "777"], "EROFS"),
        (["mkdir", path], "EEXIST"),
        (["rename", path, path + ".moved"], "EBUSY"),
        (["rmdir", path], "EBUSY"),
        (["mkdir", path + ".decoy"], "OK"),
        (["rename", path + ".decoy", path], "EBUSY"),
        (["rmdir", path + ".decoy"], "OK"),
    ]
    if existing_file:
        f = path + "/" + existing_file
        e += [
            (["read", f], "OK", existing_content),
            (["write", f], "EROFS"),
            (["append", f], "EROFS"),
            (["unlink", f], "EROFS"),
            (["rename", f, f + ".moved"], "EROFS"),
        ]
    return e


def pinned_ops(path):
    """An ancestor of a protected path: renaming or removing it fails with EBUSY."""
    return [
        (["rename", path, path + ".moved"], "EBUSY"),
        (["rmdir", path], "EBUSY"),
    ]


# ---- host side ------------------------------------------------------------------

def snapshot(top):
    """A full recursive listing of top: relative path -> (type, mode, size,
    uid, link target or content hash). Directory sizes and times are left
    out (they change when entries come and go, and that is all a run may do)."""
    out = {}

    def one(p, rel):
        st = os.lstat(p)
        m = stat.filemode(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = (m, None, st.st_uid, os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = (m, None, st.st_uid, None)
        else:
            h = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()[:16]
            out[rel] = (m, st.st_size, st.st_uid, h)

    one(top, ".")
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            one(p, os.path.relpath(p, top))
    return out


def snapshot_diff(before, after):
    lines = []
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            lines.append("%s: %s -> %s" % (k, before.get(k), after.get(k)))
    return "\n".join(lines)


def private_registry(sb):
    """A runtime directory of the test's own (XDG_RUNTIME_DIR, owned by the
    user, 0700) so the placeholder registry ($XDG_RUNTIME_DIR/cordon) holds
    only this test's runs. Returns (env, registry directory)."""
    run = sb.mkdir("run", 0o700)
    return {"XDG_RUNTIME_DIR": run}, os.path.join(run, "cordon")


def registry_lines(regdir):
    p = os.path.join(regdir, "placeholders")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [l for l in f.read().splitlines() if l.strip()]


def assert_registry_clean(regdir):
    """Only the lock and the (empty) registry file are left."""
    if not os.path.exists(regdir):
        return
    extra = set(os.listdir(regdir)) - {"lock", "placeholders"}
    assert not extra, "left in the registry directory: %s" % sorted(extra)
    assert registry_lines(regdir) == [], "registry entries left: %s" % registry_lines(regdir)


def host_run(sb, argv, cwd=None, check=True, env=None):
    """argv on the host as the sandbox's user (no cordon)."""
    e = sb.env(dict(GIT_ENV, **(env or {})))
    p = subprocess.run(as_caller(sb, argv), cwd=cwd or sb.ws, env=e, capture_output=True,
                       text=True, timeout=60)
    if check:
        assert p.returncode == 0, "%s: rc=%d\n%s%s" % (argv, p.returncode, p.stdout, p.stderr)
    return p


def git_init(sb, path, commit=False):
    """A repository at path, made by the sandbox's user (so it owns it)."""
    os.makedirs(path, exist_ok=True)
    sb.own(path)
    host_run(sb, ["git", "init", "-q", path])
    if commit:
        with open(os.path.join(path, "README"), "w") as f:
            f.write("tracked\n")
        sb.own(os.path.join(path, "README"))
        host_run(sb, ["git", "-C", path, "add", "README"])
        host_run(sb, ["git", "-C", path, "commit", "-qm", "initial"])


def populate(sb, d, with_claude=True):
    """Every protected name as an existing file or directory under d, with
    recognisable content. Returns {relative name: content} of the files."""
    contents = {}
    names = list(FILES) + (list(CLAUDE_FILES) if with_claude else [])
    for n in names:
        c = "original %s\n" % n
        sb.write(os.path.relpath(os.path.join(d, n), sb.base), c)
        contents[n] = c
    for n in list(DIRS) + (list(CLAUDE_DIRS) if with_claude else []):
        c = "original %s/keep.json\n" % n
        sb.write(os.path.relpath(os.path.join(d, n, "keep.json"), sb.base), c)
        contents[n + "/keep.json"] = c
    for root, dirs, _ in os.walk(d):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
            sb.own(os.path.join(root, x))
    return contents


def tool_steps(sb, steps, *opts, cwd=None, env=None):
    """Run each shell command of steps (a list of strings) inside one sandbox
    and return [(output, exit status)] for each; stderr is merged in."""
    script = ""
    for i, cmd in enumerate(steps):
        script += 'echo "@@step %d"; ( %s ) 2>&1; echo "@@rc $?"\n' % (i, cmd)
    p = sb.run(*opts, "--", "/bin/sh", "-c", script, cwd=cwd, env=env)
    assert p.returncode == 0, "rc=%d\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    res, cur = [], None
    for line in p.stdout.splitlines():
        if line.startswith("@@step "):
            cur = []
        elif line.startswith("@@rc "):
            res.append(("\n".join(cur), int(line[5:])))
            cur = None
        elif cur is not None:
            cur.append(line)
    assert len(res) == len(steps), p.stdout + p.stderr
    return res


def check_tools(sb, expect, *opts, cwd=None, env=None):
    """expect: list of (shell command, words its failure message must hold).
    Each command must fail (non-zero) and print every word."""
    got = tool_steps(sb, [e[0] for e in expect], *opts, cwd=cwd, env=env)
    bad = []
    for (cmd, words), (out, rc) in zip(expect, got):
        if rc == 0 or not all(w in out for w in words):
            bad.append("%s\n    expected failure with %s\n    got rc=%d: %s" % (cmd, words, rc,
                                                                          out))
    assert not bad, "as %s:\n" % sb.user + "\n".join(bad)
    return got
