"""gitignore-style globs in the four filesystem lists (issue: workspace
protection, "Done when" 6; src/policy/glob.c).

`*`, `?`, `[...]` match within one component (leading dots included), `**`
zero or more directories; a relative pattern is against the working
directory. Patterns are expanded once, when cordon starts: see
test_files_created_later_are_not_matched for why that is by design. A pattern
that does not start from a literal directory is refused (exit 125), never
skipped. Every test runs as root and as uid 65534.
"""
import os
import subprocess

import pytest

from helpers import own_tree
from workspace_util import (PY, assert_registry_clean, check, check_tools, git_init,
                            private_registry, snapshot, snapshot_diff)


def files(sb, names, top=None):
    top = top or sb.ws
    for n in names:
        p = os.path.join(top, n)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("content of %s\n" % n)
    own_tree(sb, top)


def test_deny_read_glob_hides_every_match_at_any_depth(sb):
    files(sb, ["a.pem", "x/y/b.pem", "x/.hidden.pem", "c.txt", "x/d.txt", "x/y/e.pem.txt"])
    s = sb.settings({"filesystem": {"allowWrite": ["."], "denyRead": ["**/*.pem"]}})
    check(sb, [
        (["read", "a.pem"], "EACCES"),
        (["read", "x/y/b.pem"], "EACCES"),
        (["read", "x/.hidden.pem"], "EACCES"),        # leading dots match, as in .gitignore
        (["read", "c.txt"], "OK", "content of c.txt\n"),
        (["read", "x/d.txt"], "OK", "content of x/d.txt\n"),
        (["read", "x/y/e.pem.txt"], "OK", "content of x/y/e.pem.txt\n"),
    ], "-s", s)
    check_tools(sb, [("cat x/y/b.pem", ["x/y/b.pem", "Permission denied"])], "-s", s)


def test_allow_read_glob_reopens_matches_inside_a_denied_directory(sb):
    files(sb, ["secret/k", "secret/k.pub", "secret/other.pub", "secret/sub/j.pub",
               "secret/deep/er/m.pub"])
    s = sb.settings({"filesystem": {"allowWrite": ["."], "denyRead": ["secret"],
                                    "allowRead": ["secret/*.pub", "secret/deep/**/*.pub"]}})
    check(sb, [
        (["read", "secret/k.pub"], "OK", "content of secret/k.pub\n"),
        (["read", "secret/other.pub"], "OK", "content of secret/other.pub\n"),
        (["read", "secret/deep/er/m.pub"], "OK", "content of secret/deep/er/m.pub\n"),
        # Not matched: the rest of the denied directory stays hidden (a
        # denied directory with re-allowed paths shows only those: ENOENT).
        (["read", "secret/k"], "ENOENT"),
        (["read", "secret/sub/j.pub"], "ENOENT"),     # "*" does not cross "/"
    ], "-s", s)


def test_allow_write_glob_makes_only_matching_directories_writable(sb):
    for d in ("out-1", "out-2", "other", "out-x/nested"):
        sb.mkdir("home/ws/" + d)
    files(sb, ["out-1/keep", "other/keep"])
    s = sb.settings({"filesystem": {"allowWrite": ["out-*"]}})
    check(sb, [
        (["write", "out-1/new", "1"], "OK"),
        (["write", "out-2/new", "2"], "OK"),
        (["write", "out-x/nested/new", "3"], "OK"),   # below a match
        (["write", "other/new"], "EROFS"),
        (["write", "top-new"], "EROFS"),
        (["mkdir", "out-3"], "EROFS"),                # the working directory is not writable
    ], "-s", s)
    with open(os.path.join(sb.ws, "out-2", "new")) as f:
        assert f.read() == "2"


def test_allow_write_glob_roots_are_protected_like_any_write_root(sb):
    out = sb.mkdir("home/ws/out-1")
    git_init(sb, out)
    env, reg = private_registry(sb)
    before = snapshot(out)
    s = sb.settings({"filesystem": {"allowWrite": ["out-*"]}})
    try:
        check(sb, [
            (["write", "out-1/.git/hooks/pre-commit", "#!/bin/sh\necho evil\n"], "EROFS"),
            (["write", "out-1/.bashrc"], "EROFS"),
            (["write", "out-1/.git/config", "[core]\n"], "EROFS"),
            (["rename", "out-1/.git", "out-1/git.moved"], "EBUSY"),
        ], "-s", s, env=env)
    finally:
        after = snapshot(out)
    assert after == before, snapshot_diff(before, after)
    assert_registry_clean(reg)


def test_deny_write_glob_makes_matching_files_read_only(sb):
    files(sb, ["src/a.lock", "src/b.lock", "src/b.txt", "src/sub/c.lock", "d.lock"])
    s = sb.settings({"filesystem": {"allowWrite": ["."], "denyWrite": ["src/*.lock"]}})
    check(sb, [
        (["append", "src/a.lock"], "EROFS"),
        (["write", "src/b.lock"], "EROFS"),
        (["rename", "src/a.lock", "src/a.moved"], "EBUSY"),
        (["unlink", "src/b.lock"], "EBUSY"),
        (["read", "src/a.lock"], "OK", "content of src/a.lock\n"),
        (["append", "src/b.txt", "more\n"], "OK"),
        (["append", "src/sub/c.lock", "more\n"], "OK"),  # "*" does not cross "/"
        (["append", "d.lock", "more\n"], "OK"),
    ], "-s", s)
    check_tools(sb, [("echo x >> src/a.lock", ["src/a.lock", "Read-only file system"])],
                "-s", s)


@pytest.mark.parametrize("key", ["denyRead", "allowRead", "allowWrite", "denyWrite"])
def test_a_pattern_without_a_literal_base_is_refused(sb, key):
    fs = {"allowWrite": ["."]}
    fs.setdefault(key, []).append("/**/*.pem")
    s = sb.settings({"filesystem": fs})
    p = sb.run("-s", s, "--", "true")
    assert p.returncode == 125, p.stderr
    assert '"/**/*.pem"' in p.stderr and "/filesystem/%s/" % key in p.stderr, p.stderr
    assert "literal directory" in p.stderr, p.stderr


@pytest.mark.parametrize("flag", ["--deny-read", "--allow-read", "--allow-write",
                                  "--deny-write"])
def test_a_flag_pattern_without_a_literal_base_is_refused(sb, flag):
    p = sb.run(flag, "/*/x.pem", "--", "true")
    assert p.returncode == 125, p.stderr
    assert flag in p.stderr and '"/*/x.pem"' in p.stderr, p.stderr


def test_files_created_later_are_not_matched(sb):
    """By design (glob.c; srt does the same on Linux, srt-compat.md 3.15):
    patterns are expanded once, when cordon starts, into the paths that exist
    then, because the view is made of bind mounts of existing objects. A file
    created afterwards, inside the sandbox or on the host, is not matched: a
    later allowRead or allowWrite match is simply not granted (fail closed); a
    later denyWrite match is a file the command may create anyway; a later
    denyRead match (host.pem below, written by the host during the run) is
    readable, so secrets that appear while a run is going on must be covered
    by a rule on their directory (denyRead ["keys"]), not by a glob."""
    files(sb, ["a.pem"])
    s = sb.settings({"filesystem": {"allowWrite": ["."], "denyRead": ["**/*.pem"]}})
    script = (
        "import os, sys\n"
        "def rd(p):\n"
        "    try:\n"
        "        return open(p).read().strip()\n"
        "    except OSError as e:\n"
        "        return 'E%d' % e.errno\n"
        "open('inside.pem', 'w').write('inside\\n')\n"
        "print(rd('a.pem'), rd('inside.pem'), flush=True)\n"
        "print('READY', flush=True)\n"
        "sys.stdin.readline()\n"
        "print(rd('host.pem'), flush=True)\n")
    p = sb.popen("-s", s, "--", PY, "-c", script, stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline().split()
        assert p.stdout.readline().strip() == "READY"
        files(sb, ["host.pem"])
        p.stdin.write("go\n")
        p.stdin.flush()
        last = p.stdout.readline().strip()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert first == ["E13", "inside"], first            # a.pem: EACCES
    assert last == "content of host.pem", last
