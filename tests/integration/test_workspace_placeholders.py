"""Placeholders (issue: workspace protection, "Done when" 2).

A protected name that does not exist at the top of a write root gets a
placeholder: created on the host with O_EXCL (an empty 0644 file, so that
writing to it fails with EROFS from the read-only mount rather than EACCES,
or an empty 0555 directory for .vscode, .idea and .claude), bound read-only
inside, recorded in the registry ($XDG_RUNTIME_DIR/cordon, else
~/.cache/cordon, else /tmp/cordon-<uid>) and removed when the last run using
it ends. Inside, git
does not list placeholders (cordon binds an extended copy of
.git/info/exclude; the host's file is unchanged, and a repository without
one gets an empty one for the run). Every test runs as root and as uid 65534.
"""
import os
import stat

import pytest

from workspace_util import (GIT_ENV, HeldRun, TOP_PLACEHOLDER_DIRS, TOP_PLACEHOLDER_FILES,
                            assert_registry_clean, git_init, mismatches, private_registry,
                            registry_lines, snapshot, snapshot_diff)

NAMES = TOP_PLACEHOLDER_FILES + TOP_PLACEHOLDER_DIRS


def read_bytes(p):
    with open(p, "rb") as f:
        return f.read()


def inside_view_ops():
    ops = []
    for n in TOP_PLACEHOLDER_FILES:
        ops += [(["stat", n], "OK", ["file", "644", 0]), (["read", n], "OK", ""),
                (["w_ok", n], "OK", False), (["write", n], "EROFS")]
    for n in TOP_PLACEHOLDER_DIRS:
        ops += [(["stat", n], "OK", ["dir", "555", None]), (["listdir", n], "OK", []),
                (["w_ok", n], "OK", False), (["mkdir", n + "/x"], "EROFS")]
    return ops


def host_placeholders(ws):
    """{name: (type, mode, size or number of entries, uid)} of what exists."""
    out = {}
    for n in NAMES:
        p = os.path.join(ws, n)
        if not os.path.lexists(p):
            continue
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            out[n] = ("dir", oct(stat.S_IMODE(st.st_mode)), len(os.listdir(p)), st.st_uid)
        else:
            out[n] = ("file" if stat.S_ISREG(st.st_mode) else "other",
                      oct(stat.S_IMODE(st.st_mode)), st.st_size, st.st_uid)
    return out


def test_placeholders_inside_on_the_host_during_the_run_and_gone_after(sb):
    git_init(sb, sb.ws, commit=True)
    exclude = os.path.join(sb.ws, ".git", "info", "exclude")
    exclude_before = read_bytes(exclude)
    env, reg = private_registry(sb)
    env.update(GIT_ENV)
    before = snapshot(sb.ws)
    first = inside_view_ops() + [
        (["cmd", "git", "status", "--porcelain", "--untracked-files=all"], "OK", [0, ""]),
    ]
    run = HeldRun(sb, [e[0] for e in first], [["cmd", "cat", ".git/info/exclude"]], env=env)
    try:
        got = run.wait_ready()
        bad = mismatches(first, got)
        # On the host, while the run is going on: every placeholder exists,
        # empty, owned by the user; the registry lists each one.
        host = host_placeholders(sb.ws)
        want = {n: ("file", "0o644", 0, sb.uid) for n in TOP_PLACEHOLDER_FILES}
        want.update({n: ("dir", "0o555", 0, sb.uid) for n in TOP_PLACEHOLDER_DIRS})
        assert host == want, host
        paths = sorted(l.split(" ", 4)[4] for l in registry_lines(reg))
        # and .git/commondir, holding "." (the repository itself), and an
        # empty .git/config.worktree
        assert paths == sorted(os.path.join(sb.ws, n) for n in
                               NAMES + (".git/commondir", ".git/config.worktree")), paths
        assert read_bytes(os.path.join(sb.ws, ".git", "commondir")) == b".\n"
        assert read_bytes(exclude) == exclude_before
        second = run.release()
    finally:
        run.kill()
    assert not bad, "\n".join(bad)
    assert run.rc == 0, run.err
    # Inside, .git/info/exclude is the user's plus the placeholders.
    rc, text = second[0][1]
    assert text.startswith(exclude_before.decode()), text
    for n in TOP_PLACEHOLDER_FILES:
        assert "/%s\n" % n in text, text
    for n in TOP_PLACEHOLDER_DIRS:
        assert "/%s/\n" % n in text, text
    # After: exactly as before, and nothing left in the registry.
    after = snapshot(sb.ws)
    assert after == before, snapshot_diff(before, after)
    assert read_bytes(exclude) == exclude_before
    assert_registry_clean(reg)


@pytest.mark.parametrize("where", ["cache", "tmp"])
def test_the_default_registry_location_is_left_clean(sb, where):
    """Without XDG_RUNTIME_DIR the registry is ~/.cache/cordon (a directory
    of the user's own: another user cannot take its name first), or, for a
    user without a usable home, /tmp/cordon-<uid>; 0700, the user's. After
    the run, nothing of this run is left in it besides the lock and the
    registry file (which other runs on the machine may share)."""
    if where == "cache":
        reg = os.path.join(sb.home, ".cache", "cordon")
        env = None
    else:
        reg = "/tmp/cordon-%d" % sb.uid
        env = {"HOME": "/nonexistent", "XDG_CONFIG_HOME": os.path.join(sb.home, ".config")}
    existed = set(os.listdir(reg)) if os.path.isdir(reg) else set()
    before = snapshot(sb.ws)
    run = HeldRun(sb, [["stat", ".bashrc"]], [], env=env)
    try:
        assert run.wait_ready() == [("OK", ["file", "644", 0])]
        st = os.lstat(reg)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == sb.uid
        assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
        mine = [l for l in registry_lines(reg) if sb.ws in l]
        assert len(mine) == len(NAMES), mine
        run.release()
    finally:
        run.kill()
    assert run.rc == 0, run.err
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert [l for l in registry_lines(reg) if sb.base in l] == []
    extra = set(os.listdir(reg)) - existed - {"lock", "placeholders", "placeholders.tmp"}
    assert not extra, extra


def test_nested_repository_placeholders_are_excluded_too(sb):
    """A nested repository without .git/hooks gets a placeholder there; git
    in the top repository does not list it either (nor anything else)."""
    git_init(sb, sb.ws, commit=True)
    sub = sb.mkdir("home/ws/lib")
    git_init(sb, sub)
    import shutil
    shutil.rmtree(os.path.join(sub, ".git", "hooks"))
    env, reg = private_registry(sb)
    env.update(GIT_ENV)
    before = snapshot(sb.ws)
    run = HeldRun(sb, [["cmd", "git", "status", "--porcelain", "--untracked-files=all",
                        "--ignore-submodules=none"],
                       ["cmd", "git", "-C", "lib", "status", "--porcelain",
                        "--untracked-files=all"],
                       ["stat", "lib/.git/hooks"]], [], env=env)
    try:
        got = run.wait_ready()
        assert os.path.isdir(os.path.join(sub, ".git", "hooks"))
        run.release()
    finally:
        run.kill()
    assert run.rc == 0, run.err
    # lib is an untracked nested repository: git shows it as one entry.
    assert got[0] == ("OK", [0, "?? lib/\n"]), got
    assert got[1] == ("OK", [0, ""]), got
    assert got[2] == ("OK", ["dir", "555", None]), got
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)


def test_git_does_not_list_placeholders_without_an_exclude_file(sb):
    git_init(sb, sb.ws, commit=True)
    os.unlink(os.path.join(sb.ws, ".git", "info", "exclude"))
    env, _ = private_registry(sb)
    env.update(GIT_ENV)
    run = HeldRun(sb, [["cmd", "git", "status", "--porcelain"]], [], env=env)
    try:
        got = run.wait_ready()
        run.release()
    finally:
        run.kill()
    assert got == [("OK", [0, ""])], got
