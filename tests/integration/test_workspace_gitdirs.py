"""Places git reads code from besides .git/hooks and .git/config, and write
roots the caller does not own.

- .git/commondir moves a repository's config and hooks to the directory it
  names: planting one makes the host's next `git status` run a planted
  core.fsmonitor. A missing one gets a placeholder holding "." (the
  repository itself, which is what git assumes without one).
- A submodule's git directory (.git/modules/NAME, nested ones below it) has
  its own config and hooks, which git uses when the user works in the
  submodule.
- A linked worktree's administrative directory (.git/worktrees/NAME) has a
  commondir of its own.
- At the top of a write root the caller can write but does not own (a
  group-shared project, a sticky directory), missing protected names get
  placeholders like anywhere else.
- A denyWrite entry that does not exist yet cannot be created either.

Every attack is tried for real inside cordon, checked for the errno, the
fs.deny record, and that the host's git afterwards runs nothing planted.
Every test runs as root and as uid 65534.
"""
import os

from conftest import NOBODY, is_root
from test_workspace_git import audit_records
from workspace_util import GIT_ENV, git_init, host_run, private_registry, snapshot, \
    snapshot_diff

# A core.fsmonitor command runs on every `git status`: a marker file proves
# whether the host's git ran planted configuration.
EVIL_CONFIG = '[core]\n\tfsmonitor = "touch {marker}; false"\n'


def denies(path):
    return [r for r in audit_records(path) if r["event"] == "fs.deny"]


def test_commondir_cannot_be_planted(sb):
    git_init(sb, sb.ws, commit=True)
    marker = sb.path("outside", "fsmonitor-ran")
    evil = os.path.join(sb.ws, "evil")
    audit = sb.path("outside", "audit.jsonl")
    env, _ = private_registry(sb)
    env.update(GIT_ENV)
    script = (
        "mkdir -p evil/hooks && cp -r .git/objects .git/refs .git/HEAD evil/\n"
        "printf '%s' > evil/config\n"
        "echo ../evil > .git/commondir; echo rc=$?\n"
        "cat .git/commondir\n"
        # git inside still works with the placeholder
        "echo x > f.txt && git add f.txt && git commit -qm second && git log --format=%%s\n"
        % EVIL_CONFIG.format(marker=marker).replace("\n", "\\n").replace("\t", "\\t"))
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c", script, env=env)
    assert p.returncode == 0, p.stderr
    assert "rc=2\n.\nsecond\ninitial\n" == p.stdout, (p.stdout, p.stderr)
    assert "cannot create .git/commondir: Read-only file system" in p.stderr, p.stderr
    recs = [r for r in denies(audit) if r["path"].endswith("/.git/commondir")]
    assert recs and recs[0]["rule"] == "protected: .git/commondir", recs
    # Nothing is left in .git, and the host's git does not run evil/config,
    # which it would if evil were the repository (the positive control).
    assert not os.path.exists(os.path.join(sb.ws, ".git", "commondir"))
    assert os.path.isdir(evil)
    host_run(sb, ["git", "--git-dir", evil, "--work-tree", sb.ws, "status", "--short"],
             check=False)
    assert os.path.exists(marker), "this git does not run core.fsmonitor: the test proves nothing"
    os.unlink(marker)
    host_run(sb, ["git", "status", "--short"])
    assert not os.path.exists(marker)
    assert host_run(sb, ["git", "log", "--format=%s"]).stdout == "second\ninitial\n"


def test_an_existing_commondir_is_read_only(sb):
    """A repository whose .git/commondir exists (".", as git accepts) keeps
    it: it is bound read-only and left as it was."""
    git_init(sb, sb.ws, commit=True)
    cd = sb.write("home/ws/.git/commondir", ".\n")
    p = sb.sh("echo ../evil > .git/commondir; echo rc=$?; git status --short; echo ok",
              env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\nok\n", p.stderr
    with open(cd) as f:
        assert f.read() == ".\n"


def make_submodules(sb):
    """sb.ws: a repository with two submodules, "sub" and "lib/foo"; "sub"
    has one of its own, "inner". Returns the host paths of their git
    directories."""
    src = sb.mkdir("outside/src")
    git_init(sb, src, commit=True)
    inner_src = sb.mkdir("outside/inner")
    git_init(sb, inner_src, commit=True)
    allow = ["-c", "protocol.file.allow=always"]
    host_run(sb, ["git", *allow, "-C", src, "submodule", "add", "-q", inner_src, "inner"])
    host_run(sb, ["git", "-C", src, "commit", "-qm", "inner"])
    git_init(sb, sb.ws, commit=True)
    host_run(sb, ["git", *allow, "submodule", "add", "-q", src, "sub"])
    host_run(sb, ["git", *allow, "submodule", "add", "-q", src, "lib/foo"])
    host_run(sb, ["git", *allow, "submodule", "update", "-q", "--init", "--recursive"])
    host_run(sb, ["git", "commit", "-qm", "submodules"])
    g = os.path.join(sb.ws, ".git", "modules")
    return [os.path.join(g, "sub"), os.path.join(g, "lib", "foo"),
            os.path.join(g, "sub", "modules", "inner")]


def test_submodule_config_and_hooks_cannot_be_written(sb):
    gitdirs = make_submodules(sb)
    marker = sb.path("outside", "fsmonitor-ran")
    audit = sb.path("outside", "audit.jsonl")
    env, _ = private_registry(sb)
    env.update(GIT_ENV)
    lines = []
    for gd in gitdirs:
        rel = os.path.relpath(gd, sb.ws)
        lines += [
            "printf '%s' >> %s/config; echo rc=$?" % (
                EVIL_CONFIG.format(marker=marker).replace("\n", "\\n").replace("\t", "\\t"), rel),
            "printf '#!/bin/sh\\ntouch %s\\n' > %s/hooks/post-checkout; echo rc=$?" % (marker, rel),
            "echo ../evil > %s/commondir; echo rc=$?" % rel,
        ]
    # git still works in the submodules inside
    lines += ["git -C sub status --short && git -C lib/foo log --format=%s -1",
              "git -C sub/inner log --format=%s -1"]
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c", "\n".join(lines), env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\n" * 9 + "inner\ninitial\n", (p.stdout, p.stderr)
    assert p.stderr.count("Read-only file system") == 9, p.stderr
    paths = {r["path"] for r in denies(audit)}
    for gd in gitdirs:
        for name in ("config", "hooks/post-checkout", "commondir"):
            assert os.path.join(gd, name) in paths, (name, sorted(paths))
        assert not os.path.exists(os.path.join(gd, "hooks", "post-checkout"))
        assert not os.path.exists(os.path.join(gd, "commondir"))
    # On the host, git in the submodules runs nothing planted; it would run a
    # core.fsmonitor set there (the positive control).
    host_run(sb, ["git", "-C", os.path.join(sb.ws, "sub"), "-c",
                  "core.fsmonitor=touch %s; false" % marker, "status", "--short"], check=False)
    assert os.path.exists(marker), "this git does not run core.fsmonitor: the test proves nothing"
    os.unlink(marker)
    for wt in ("sub", "lib/foo", "sub/inner"):
        host_run(sb, ["git", "-C", os.path.join(sb.ws, wt), "status", "--short"])
        host_run(sb, ["git", "-C", os.path.join(sb.ws, wt), "checkout", "-q", "HEAD"])
    assert not os.path.exists(marker)


def test_linked_worktree_commondir_is_read_only(sb):
    git_init(sb, sb.ws, commit=True)
    wt = sb.path("outside", "wt")
    host_run(sb, ["git", "worktree", "add", "-q", wt])
    admin = os.path.join(sb.ws, ".git", "worktrees", "wt")
    with open(os.path.join(admin, "commondir")) as f:
        before = f.read()
    audit = sb.path("outside", "audit.jsonl")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c",
               "echo /tmp/evil > .git/worktrees/wt/commondir; echo rc=$?", env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\n" and "Read-only file system" in p.stderr, p.stderr
    with open(os.path.join(admin, "commondir")) as f:
        assert f.read() == before
    assert any(r["path"] == os.path.join(admin, "commondir") for r in denies(audit))


def shared_dir(sb, sticky):
    """A directory the caller can write but does not own: a group-shared
    project (setgid, group-writable) or a sticky world-writable one."""
    d = sb.path("shared")
    os.mkdir(d)
    owner = NOBODY if sb.user == "root" else 0
    if is_root():
        os.chown(d, owner, NOBODY)
    os.chmod(d, 0o1777 if sticky else 0o2777)
    return d


def check_top_names_refused(sb, d):
    env, regdir = private_registry(sb)
    audit = sb.path("outside", "audit.jsonl")
    before = snapshot(d)
    script = ("echo x > .bashrc; echo rc=$?; echo x > .envrc; echo rc=$?; "
              "mkdir .vscode/x; echo rc=$?; mkdir -p .claude/x; echo rc=$?; echo ok > work.txt")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c", script, cwd=d, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\nrc=2\nrc=1\nrc=1\n", (p.stdout, p.stderr)
    assert p.stderr.count("Read-only file system") == 4, p.stderr
    got = sorted((r["op"], r["path"], r["rule"]) for r in denies(audit))
    assert got == sorted([
        ("openat", os.path.join(d, ".bashrc"), "protected: .bashrc"),
        ("openat", os.path.join(d, ".envrc"), "protected: .envrc"),
        ("mkdir", os.path.join(d, ".vscode/x"), "protected: .vscode"),
        # mkdir -p: EEXIST on cordon's placeholder counts (it exists only
        # because it is protected), then the refused mkdir below it
        ("mkdir", os.path.join(d, ".claude"), "protected: .claude"),
        ("mkdir", os.path.join(d, ".claude/x"), "protected: .claude"),
    ]), got
    # Only the command's own file is left: the placeholders are gone.
    after = snapshot(d)
    assert os.path.isfile(os.path.join(d, "work.txt"))
    del after["work.txt"]
    assert snapshot_diff(before, after) == "", snapshot_diff(before, after)


def test_group_shared_write_root_gets_placeholders(sb):
    d = shared_dir(sb, sticky=False)
    check_top_names_refused(sb, d)


def test_sticky_write_root_gets_placeholders(sb):
    d = shared_dir(sb, sticky=True)
    check_top_names_refused(sb, d)


def test_deny_write_of_a_missing_path_cannot_be_created(sb):
    settings = sb.settings({"filesystem": {"allowWrite": ["."],
                                           "denyWrite": [".env", "newdir/inner"]}})
    env, regdir = private_registry(sb)
    audit = sb.path("outside", "audit.jsonl")
    before = snapshot(sb.ws)
    p = sb.run("-s", settings, "--audit", audit, "--", "/bin/sh", "-c",
               "echo S=1 > .env; echo rc=$?; mkdir -p newdir/inner; echo rc=$?; "
               "mkdir other && echo ok", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\nrc=1\nok\n", (p.stdout, p.stderr)
    assert p.stderr.count("Read-only file system") == 2, p.stderr
    recs = sorted((r["op"], r["path"], r["rule"]) for r in denies(audit))
    # mkdir -p: "newdir" exists only as the placeholder (EEXIST there counts),
    # then "newdir/inner" is refused
    assert recs == [("mkdir", os.path.join(sb.ws, "newdir"), "denyWrite"),
                    ("mkdir", os.path.join(sb.ws, "newdir/inner"), "denyWrite"),
                    ("openat", os.path.join(sb.ws, ".env"), "denyWrite")], recs
    after = snapshot(sb.ws)
    del after["other"]
    assert snapshot_diff(before, after) == "", snapshot_diff(before, after)
    # A path that exists is read-only as before.
    sb.write("home/ws/.env", "S=0\n")
    p = sb.run("-s", settings, "--", "/bin/sh", "-c", "echo S=1 > .env; echo rc=$?", env=env)
    assert p.stdout == "rc=2\n", p.stderr
    with open(os.path.join(sb.ws, ".env")) as f:
        assert f.read() == "S=0\n"


def test_commondir_planted_in_a_nested_repository_is_reported(sb):
    """Nested repositories get no commondir placeholder (one per repository
    is too slow for hundreds of them): a planted one is reported at exit."""
    nested = os.path.join(sb.ws, "a", "b")
    git_init(sb, nested, commit=True)
    audit = sb.path("outside", "audit.jsonl")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c",
               "echo ../../evil > a/b/.git/commondir; echo rc=$?", env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=0\n"
    path = os.path.join(nested, ".git", "commondir")
    assert [r["path"] for r in audit_records(audit) if r["event"] == "fs.hook"] == [path]
    assert "a file appeared in a repository during the run" in p.stderr, p.stderr
    # A nested repository's commondir that existed at start is read-only.
    p = sb.run("--", "/bin/sh", "-c", "echo ../../x > a/b/.git/commondir; echo rc=$?",
               env=GIT_ENV)
    assert p.stdout == "rc=2\n", p.stderr


def test_config_worktree_cannot_be_planted(sb):
    """With extensions.worktreeConfig, git reads .git/config.worktree too: a
    missing one gets an empty placeholder at the top; in a nested repository
    one that appears is reported."""
    git_init(sb, sb.ws, commit=True)
    nested = os.path.join(sb.ws, "n")
    git_init(sb, nested, commit=True)
    audit = sb.path("outside", "audit.jsonl")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c",
               "echo '[core] fsmonitor = x' > .git/config.worktree; echo rc=$?; "
               "echo '[core] fsmonitor = x' > n/.git/config.worktree; echo rc=$?",
               env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\nrc=0\n", p.stderr
    assert not os.path.exists(os.path.join(sb.ws, ".git", "config.worktree"))
    hooks = [r["path"] for r in audit_records(audit) if r["event"] == "fs.hook"]
    assert hooks == [os.path.join(nested, ".git", "config.worktree")], hooks
