"""Workspace protection (issue: workspace protection, "Done when" 1): srt's
mandatory write denies (srt-compat.md 3.14) and cordon's additions.

Each protected name, existing or not, cannot be written, created, renamed or
deleted, at the top of a write root and in a nested repository at depth 3;
.git/hooks and .git/config (unless allowGitConfig) of every repository; every
ancestor of a protected path up to its write root is pinned. Every refusal is
checked for its exact reason: EROFS ("Read-only file system") for writes and
creations (the path is a read-only mount), EBUSY ("Device or resource busy")
for renames and removals (it, or its ancestor, is a mount point); EEXIST
where the name is taken by the placeholder itself. From python os calls
(workspace_util.wprobe) and from real tools (sh, mv, rm, mkdir, cp, ln, git).
Every test runs as root and as uid 65534 and checks that the host's
workspace is exactly as before the run.
"""
import os
import shutil

import pytest

from helpers import own_tree
from workspace_util import (wprobe, ALL_DIRS, ALL_FILES, CLAUDE_DIRS, CLAUDE_FILES, DIRS, FILES,
                            assert_registry_clean, check, check_tools, dir_ops, file_ops,
                            git_init, pinned_ops, populate, private_registry, snapshot,
                            snapshot_diff, tool_steps)

RO = "Read-only file system"
BUSY = "Device or resource busy"


def read(p):
    with open(p) as f:
        return f.read()


def repo_ops(prefix, sample="pre-commit.sample", config=True, hooks_exist=True):
    """The git files of the repository at prefix (a path ending in "/" or "")."""
    g = prefix + ".git"
    e = []
    if hooks_exist:
        e += dir_ops(g + "/hooks", sample, None)
        e += [(["write", g + "/hooks/pre-commit", "#!/bin/sh\necho evil\n"], "EROFS"),
              (["unlink", g + "/hooks/" + sample], "EROFS")]
    else:
        e += dir_ops(g + "/hooks")
        e += [(["listdir", g + "/hooks"], "OK", [])]
    if config is not None:
        e += file_ops(g + "/config", exists=config, content=None)
    e += pinned_ops(g)
    # The rest of .git stays writable: git needs its index and objects.
    e += [(["write", g + "/cordon-probe", "x"], "OK"), (["unlink", g + "/cordon-probe"], "OK")]
    return e


def fill_contents(sb, expect, top):
    """Fill in expected contents (None) of "read" steps from the host."""
    out = []
    for e in expect:
        if e[0][0] == "read" and len(e) > 2 and e[2] is None:
            e = (e[0], e[1], read(os.path.join(top, e[0][1])))
        out.append(e)
    return out


# ---------------------------------------------------------------------------
# the top of the working directory (a write root)

def test_missing_names_at_the_top_are_placeholders_no_one_can_touch(sb):
    """A workspace that is a repository and holds none of the names: each
    is a read-only placeholder inside (.claude as a whole, the first missing
    component of .claude/commands and the others)."""
    git_init(sb, sb.ws)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    e = []
    for f in FILES:
        e += file_ops(f, exists=False)
    for d in DIRS:
        e += dir_ops(d)
        e += [(["listdir", d], "OK", [])]
    e += dir_ops(".claude")
    e += [(["mkdir", d], "EROFS") for d in CLAUDE_DIRS]
    e += [(["write", f], "EROFS") for f in CLAUDE_FILES]
    e += repo_ops("")
    # Only the protected names: the rest of the workspace is writable.
    e += [(["write", "notes.txt", "mine"], "OK"), (["rename", "notes.txt", "n2"], "OK"),
          (["unlink", "n2"], "OK"), (["mkdir", "newdir"], "OK"), (["rmdir", "newdir"], "OK")]
    check(sb, fill_contents(sb, e, sb.ws), env=env)
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)


def test_existing_names_at_the_top_are_read_only_and_pinned(sb):
    git_init(sb, sb.ws)
    contents = populate(sb, sb.ws)
    sb.write("home/ws/.claude/notes.md", "mine\n")
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    e = []
    for f in ALL_FILES:
        e += file_ops(f, exists=True, content=contents[f])
    for d in ALL_DIRS:
        e += dir_ops(d, "keep.json", contents[d + "/keep.json"])
    # .claude itself is only an ancestor: pinned, its other files writable.
    e += pinned_ops(".claude")
    e += [(["write", ".claude/notes.md", "changed\n"], "OK"),
          (["write", ".claude/notes.md", "mine\n"], "OK"),
          (["write", ".claude/other.json", "{}"], "OK"), (["unlink", ".claude/other.json"], "OK")]
    e += repo_ops("")
    check(sb, fill_contents(sb, e, sb.ws), env=env)
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)


def test_missing_names_inside_existing_directories(sb):
    """.claude exists without its protected items, and the repository lacks
    .git/hooks and .git/config: each missing item is a placeholder inside the
    existing directory, which itself is pinned."""
    git_init(sb, sb.ws)
    shutil.rmtree(os.path.join(sb.ws, ".git", "hooks"))
    os.unlink(os.path.join(sb.ws, ".git", "config"))
    sb.write("home/ws/.claude/notes.md", "mine\n")
    own_tree(sb, sb.ws)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    e = []
    for f in CLAUDE_FILES:
        e += file_ops(f, exists=False)
    for d in CLAUDE_DIRS:
        e += dir_ops(d)
    e += pinned_ops(".claude")
    e += [(["write", ".claude/notes.md", "changed\n"], "OK"),
          (["write", ".claude/notes.md", "mine\n"], "OK")]
    e += repo_ops("", hooks_exist=False, config=False)
    check(sb, e, env=env)
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)


def test_a_missing_name_under_a_directory_the_user_cannot_write(sb):
    """.claude belongs to root in a workspace uid 65534 owns: cordon cannot
    create placeholders in it (nor can the command create names there), but the
    command can rename .claude itself unless it is pinned."""
    if sb.user != "user":
        pytest.skip("root creates placeholders anywhere")
    os.mkdir(os.path.join(sb.ws, ".claude"), 0o755)       # owned by root
    with open(os.path.join(sb.ws, ".claude", "notes.md"), "w") as f:
        f.write("root's\n")
    got = wprobe(sb, [["rename", ".claude", ".claude.moved"], ["mkdir", ".claude"],
                      ["mkdir", ".claude/commands"], ["write", ".claude/commands/x.md"]])
    planted = os.path.lexists(os.path.join(sb.ws, ".claude", "commands", "x.md"))
    assert (got[0][0], planted) == ("EBUSY", False), (got, planted)


def test_a_missing_name_under_a_directory_the_user_owns_but_cannot_write(sb):
    """.claude is the user's but mode 0555: no placeholder can be made in it,
    and the command could chmod it writable, so it is read-only inside (and
    pinned); the rest of the workspace is unchanged."""
    if sb.user != "user":
        pytest.skip("root creates placeholders anywhere")
    sb.mkdir("home/ws/.claude")
    sb.write("home/ws/.claude/notes.md", "mine\n")
    os.chmod(os.path.join(sb.ws, ".claude"), 0o555)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    check(sb, [
        (["chmod", ".claude", "755"], "EROFS"),
        (["mkdir", ".claude/commands"], "EROFS"),
        (["write", ".claude/settings.json"], "EROFS"),
        (["rename", ".claude", ".claude.moved"], "EBUSY"),
        (["read", ".claude/notes.md"], "OK", "mine\n"),
        (["write", "other.txt"], "OK"), (["unlink", "other.txt"], "OK"),
    ], env=env)
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)


def test_a_write_root_the_user_owns_but_cannot_write_is_refused(sb):
    """Placeholders cannot be made at the top of a 0555 working directory,
    and the command could chmod it and create .bashrc: cordon refuses to
    start rather than run without that protection."""
    if sb.user != "user":
        pytest.skip("root creates placeholders anywhere")
    os.chmod(sb.ws, 0o555)
    try:
        p = sb.run("--", "true")
    finally:
        os.chmod(sb.ws, 0o755)
    assert p.returncode == 125, p.stderr
    assert "cannot create a placeholder" in p.stderr and sb.ws in p.stderr, p.stderr
    assert os.listdir(sb.ws) == []


TOOLS_TOP = [
    ("echo evil > .bashrc", ["cannot create .bashrc", RO]),
    ("echo evil > .envrc", ["cannot create .envrc", RO]),
    ("echo '{}' > .mcp.json", ["cannot create .mcp.json", RO]),
    ("printf '#!/bin/sh\\necho evil\\n' > .git/hooks/pre-commit", ["pre-commit", RO]),
    ("cp /bin/true .git/hooks/post-checkout", ["post-checkout", RO]),
    ("echo '[core]' > .git/config", [".git/config", RO]),
    ("mkdir .vscode/x", ["cannot create directory", ".vscode/x", RO]),
    ("mkdir -p .claude/commands", ["cannot create directory", ".claude/commands", RO]),
    ("echo '{}' > .claude/settings.json", [".claude/settings.json", RO]),
    ("mv .bashrc bashrc.moved", ["cannot move", ".bashrc", BUSY]),
    ("mv .git/hooks .git/hooks.moved", ["cannot move", ".git/hooks", BUSY]),
    ("mv .git git.moved", ["cannot move", ".git", BUSY]),
    ("mv .vscode vscode.moved", ["cannot move", ".vscode", BUSY]),
    ("echo x > other && mv -f other .profile", ["cannot move", ".profile", BUSY]),
    ("rm -f .bashrc", ["cannot remove", ".bashrc", BUSY]),
    ("rm -f .git/config", ["cannot remove", ".git/config", BUSY]),
    ("rm -rf .vscode", ["cannot remove", ".vscode", BUSY]),
    ("rmdir .idea", [".idea", BUSY]),
    ("ln -sf /etc/passwd .gitconfig", [".gitconfig", BUSY]),
    ("git config user.name evil", ["could not write config file", ".git/config: " + BUSY]),
    ("git config core.hooksPath /tmp/evil", ["could not write config file", ".git/config: " + BUSY]),
]


def test_real_tools_fail_with_the_exact_reason_at_the_top(sb):
    git_init(sb, sb.ws)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    check_tools(sb, TOOLS_TOP, env=env)
    os.unlink(os.path.join(sb.ws, "other"))
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)


def test_append_or_truncate_on_a_placeholder_is_erofs(sb):
    ops = [(["append", f], "EROFS") for f in FILES]
    ops += [(["truncate", f], "EROFS") for f in FILES]
    ops += [(["append", ".git/config"], "EROFS"), (["truncate", ".git/config"], "EROFS")]
    git_init(sb, sb.ws)
    os.unlink(os.path.join(sb.ws, ".git", "config"))
    check_tools(sb, [("echo evil >> .bashrc", ["cannot create .bashrc", RO]),
                     ("touch .zshrc", [".zshrc", RO])])
    check(sb, ops)


# ---------------------------------------------------------------------------
# nested repositories

def nested_tree(sb):
    """ws/a/b/c: a repository at depth 3 holding every protected name, and
    ws/a/b/.bashrc; ws/p/q/r: a repository at depth 3 without .git/hooks and
    .git/config (they get placeholders)."""
    c = sb.mkdir("home/ws/a/b/c")
    git_init(sb, c)
    contents = populate(sb, c)
    sb.write("home/ws/a/b/.bashrc", "nested bashrc\n")
    sb.write("home/ws/a/notes.txt", "mine\n")
    r = sb.mkdir("home/ws/p/q/r")
    git_init(sb, r)
    shutil.rmtree(os.path.join(r, ".git", "hooks"))
    os.unlink(os.path.join(r, ".git", "config"))
    own_tree(sb, sb.ws)
    return contents


def test_nested_repository_at_depth_3(sb):
    contents = nested_tree(sb)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    c = "a/b/c/"
    e = []
    for f in ALL_FILES:
        e += file_ops(c + f, exists=True, content=contents[f])
    for d in ALL_DIRS:
        e += dir_ops(c + d, "keep.json", contents[d + "/keep.json"])
    e += repo_ops(c)
    e += file_ops("a/b/.bashrc", exists=True, content="nested bashrc\n")
    # Every ancestor up to the write root.
    for anc in ("a", "a/b", "a/b/c", "a/b/c/.git", "a/b/c/.claude"):
        e += pinned_ops(anc)
    e += repo_ops("p/q/r/", hooks_exist=False, config=False)
    for anc in ("p", "p/q", "p/q/r", "p/q/r/.git"):
        e += pinned_ops(anc)
    # What is not protected stays writable.
    e += [(["write", "a/notes.txt", "changed\n"], "OK"), (["write", "a/notes.txt", "mine\n"], "OK"),
          (["mkdir", "a/b/newdir"], "OK"), (["rmdir", "a/b/newdir"], "OK"),
          (["write", "a/b/c/file.txt"], "OK"), (["unlink", "a/b/c/file.txt"], "OK")]
    check(sb, fill_contents(sb, e, sb.ws), env=env)
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))
    assert_registry_clean(reg)


TOOLS_NESTED = [
    ("cd a/b/c && git config user.name evil", ["could not write config file", ".git/config: " + BUSY]),
    ("git -C p/q/r config user.name evil", ["config", BUSY]),
    ("echo evil > a/b/c/.git/hooks/pre-commit", ["pre-commit", RO]),
    ("mkdir -p p/q/r/.git/hooks && echo evil > p/q/r/.git/hooks/pre-commit", ["pre-commit", RO]),
    ("echo evil > a/b/.bashrc", [".bashrc", RO]),
    ("echo evil > a/b/c/.envrc", [".envrc", RO]),
    ("mv a a.moved", ["cannot move", BUSY]),
    ("mv a/b a/b.moved", ["cannot move", BUSY]),
    ("mv a/b/c a/b/c.moved", ["cannot move", BUSY]),
    ("mv a/b/c/.git a/b/c/git.moved", ["cannot move", BUSY]),
    ("mv p/q/r/.git p/q/r/git.moved", ["cannot move", BUSY]),
    ("rm -rf a", ["cannot remove", BUSY]),
    ("rm -f a/b/.bashrc", ["cannot remove", BUSY]),
]


def test_real_tools_in_a_nested_repository(sb):
    nested_tree(sb)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    check_tools(sb, TOOLS_NESTED, env=env)
    # rm -rf a removes what is not protected and fails on the rest.
    after = snapshot(sb.ws)
    gone = {k for k in before if k not in after}
    assert all(k.startswith("a/") for k in gone), sorted(gone)
    assert {k for k in after if k not in before} == set()
    for k in after:
        assert after[k] == before[k], k
    # Everything protected survived rm -rf.
    for k in before:
        if k.startswith("a/b/c/.git/hooks") or k.startswith("a/b/c/.claude/commands") or \
                k == "a/b/.bashrc" or k == "a/b/c/.git/config":
            assert k in after, k
    assert_registry_clean(reg)


def test_allow_git_config_lets_git_config_work_and_hooks_stay_protected(sb):
    git_init(sb, sb.ws)
    c = sb.mkdir("home/ws/a/b/c")
    own_tree(sb, sb.ws)
    git_init(sb, c)
    s = sb.settings({"filesystem": {"allowWrite": ["."], "allowGitConfig": True}})
    got = tool_steps(sb, ["git config user.name tester && git config --get user.name",
                          "git -C a/b/c config user.name nested && git -C a/b/c config --get "
                          "user.name"], "-s", s)
    assert got == [("tester", 0), ("nested", 0)], got
    assert "name = tester" in read(os.path.join(sb.ws, ".git", "config"))
    assert "name = nested" in read(os.path.join(c, ".git", "config"))
    check_tools(sb, [
        ("echo evil > .git/hooks/pre-commit", ["pre-commit", RO]),
        ("echo evil > a/b/c/.git/hooks/pre-commit", ["pre-commit", RO]),
        ("mv .git/hooks .git/h", ["cannot move", BUSY]),
        ("mv a/b/c/.git/hooks a/b/c/.git/h", ["cannot move", BUSY]),
        ("mv .git g", ["cannot move", BUSY]),
        ("mv a/b a/x", ["cannot move", BUSY]),
        ("echo evil > .bashrc", [".bashrc", RO]),
    ], "-s", s)
    e = repo_ops("", config=None) + repo_ops("a/b/c/", config=None)
    e += [(["append", ".git/config", ""], "OK"), (["append", "a/b/c/.git/config", ""], "OK")]
    check(sb, fill_contents(sb, e, sb.ws), "-s", s)


# ---------------------------------------------------------------------------
# other write roots, node_modules, depth

def test_an_additional_write_root_gets_the_same_protection(sb):
    extra = sb.mkdir("outside/extra")
    git_init(sb, extra)
    n = sb.mkdir("outside/extra/a/b/c")
    git_init(sb, n)
    sb.write("outside/extra/a/b/c/.bashrc", "nested\n")
    own_tree(sb, extra)
    env, reg = private_registry(sb)
    before, before_ws = snapshot(extra), snapshot(sb.ws)
    x = extra + "/"
    e = []
    for f in FILES:
        e += file_ops(x + f, exists=False)
    for d in DIRS:
        e += dir_ops(x + d)
    e += [(["mkdir", x + d], "EROFS") for d in CLAUDE_DIRS]
    e += repo_ops(x) + repo_ops(x + "a/b/c/")
    e += file_ops(x + "a/b/c/.bashrc", exists=True, content="nested\n")
    for anc in ("a", "a/b", "a/b/c", "a/b/c/.git"):
        e += pinned_ops(x + anc)
    e += [(["write", x + "new.txt"], "OK"), (["unlink", x + "new.txt"], "OK"),
          # and the working directory is still protected
          (["write", ".bashrc"], "EROFS"), (["mkdir", ".vscode/x"], "EROFS")]
    check(sb, fill_contents(sb, e, "/"), "--allow-write", extra, env=env)
    assert snapshot(extra) == before, snapshot_diff(before, snapshot(extra))
    assert snapshot(sb.ws) == before_ws, snapshot_diff(before_ws, snapshot(sb.ws))
    assert_registry_clean(reg)


def test_node_modules_is_not_scanned(sb):
    """srt excludes node_modules from the scan: a .bashrc inside a package is
    writable (and the working directory's own names stay protected)."""
    sb.write("home/ws/node_modules/x/.bashrc", "pkg\n")
    sb.write("home/ws/node_modules/x/.vscode/settings.json", "{}\n")
    for d in ("home/ws/node_modules", "home/ws/node_modules/x", "home/ws/node_modules/x/.vscode"):
        os.chmod(sb.path(d), 0o755)
        sb.own(sb.path(d))
    check(sb, [
        (["write", "node_modules/x/.bashrc", "changed\n"], "OK"),
        (["rename", "node_modules/x/.bashrc", "node_modules/x/b"], "OK"),
        (["write", "node_modules/x/.vscode/settings.json", "{}"], "OK"),
        (["rename", "node_modules/x", "node_modules/y"], "OK"),
        (["write", ".bashrc"], "EROFS"),
    ])
    assert read(os.path.join(sb.ws, "node_modules/y/b")) == "changed\n"


@pytest.mark.parametrize("setting,depth,protected", [
    (None, 3, True),
    (None, 4, False),
    (4, 4, True),
    (2, 3, False),
])
def test_mandatory_deny_search_depth(sb, setting, depth, protected):
    """A repository (and a .bashrc) `depth` levels below the working
    directory is protected when depth <= mandatoryDenySearchDepth (default 3)."""
    rel = "/".join("d%d" % i for i in range(1, depth + 1))
    repo = sb.mkdir("home/ws/" + rel)
    git_init(sb, repo)
    sb.write("home/ws/%s/.bashrc" % rel, "deep\n")
    own_tree(sb, sb.ws)
    obj = {"filesystem": {"allowWrite": ["."]}}
    if setting is not None:
        obj["mandatoryDenySearchDepth"] = setting
    s = sb.settings(obj)
    want = "EROFS" if protected else "OK"
    check(sb, [
        (["write", rel + "/.git/hooks/pre-commit"], want),
        (["write", rel + "/.git/config", "[core]\n"], want),
        (["write", rel + "/.bashrc"], want),
        (["rename", "d1", "d1.moved"], "EBUSY" if protected else "OK"),
    ], "-s", s)
