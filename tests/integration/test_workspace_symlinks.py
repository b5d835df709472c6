"""Protected names that are symlinks (issue: workspace protection, "Done
when" 4): dotfiles managed by stow or home-manager.

A protected symlink never stops cordon from starting. The link itself is
pinned (bound over itself), so it cannot be removed or replaced (EBUSY);
what it points to is read-only: bound read-only when it lies inside a write
root (EROFS), read-only anyway when it lies outside every write root. The
command reads the real content through the link. Every test runs as root and
as uid 65534 and checks that the workspace is exactly as before.
"""
import os

from helpers import own_tree
from workspace_util import (assert_registry_clean, check, check_tools, private_registry,
                            snapshot, snapshot_diff)

RO = "Read-only file system"
BUSY = "Device or resource busy"


def stow_tree(sb):
    """ws/dotfiles/{bashrc,vscode/settings.json,claude/commands/c.md,README}
    ws/.bashrc  -> dotfiles/bashrc          (inside the write root)
    ws/.vscode  -> dotfiles/vscode          (a directory)
    ws/.claude  -> dotfiles/claude          (a linked .claude)
    ws/.profile -> <outside>/profile        (outside every write root)
    ws/.zprofile -> /etc/hostname           (a system file)"""
    sb.write("home/ws/dotfiles/bashrc", "real bashrc\n")
    sb.write("home/ws/dotfiles/vscode/settings.json", "{\"real\": 1}\n")
    sb.write("home/ws/dotfiles/claude/commands/c.md", "real command\n")
    sb.write("home/ws/dotfiles/claude/settings.json", "{\"hooks\": {}}\n")
    sb.write("home/ws/dotfiles/README", "mine\n")
    sb.write("outside/profile", "outside profile\n")
    links = {".bashrc": "dotfiles/bashrc", ".vscode": "dotfiles/vscode",
             ".claude": "dotfiles/claude", ".profile": os.path.join(sb.outside, "profile"),
             ".zprofile": "/etc/hostname"}
    for name, target in links.items():
        os.symlink(target, os.path.join(sb.ws, name))
    own_tree(sb, sb.ws)
    return links


def test_symlinked_dotfiles_are_pinned_and_their_targets_read_only(sb):
    links = stow_tree(sb)
    with open("/etc/hostname") as f:
        hostname = f.read()
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    e = []
    for name, target in links.items():
        e += [
            (["readlink", name], "OK", target),
            (["unlink", name], "EBUSY"),
            (["rename", name, name + ".moved"], "EBUSY"),
            (["symlink", "/etc/passwd", name + ".new"], "OK"),
            (["rename", name + ".new", name], "EBUSY"),       # replacing the link
            (["unlink", name + ".new"], "OK"),
        ]
    e += [
        # The real content, read through the links.
        (["read", ".bashrc"], "OK", "real bashrc\n"),
        (["read", ".vscode/settings.json"], "OK", "{\"real\": 1}\n"),
        (["read", ".claude/commands/c.md"], "OK", "real command\n"),
        (["read", ".profile"], "OK", "outside profile\n"),
        (["read", ".zprofile"], "OK", hostname),
        # Targets inside the write root are read-only, through the link or not.
        (["write", ".bashrc"], "EROFS"),
        (["append", ".bashrc"], "EROFS"),
        (["write", "dotfiles/bashrc"], "EROFS"),
        (["unlink", "dotfiles/bashrc"], "EBUSY"),
        (["rename", "dotfiles/bashrc", "dotfiles/b"], "EBUSY"),
        (["write", ".vscode/settings.json"], "EROFS"),
        (["write", ".vscode/new.json"], "EROFS"),
        (["write", "dotfiles/vscode/new.json"], "EROFS"),
        (["rename", "dotfiles/vscode", "dotfiles/v"], "EBUSY"),
        (["write", ".claude/commands/evil.md"], "EROFS"),
        (["write", ".claude/settings.json"], "EROFS"),
        (["write", "dotfiles/claude/settings.json"], "EROFS"),
        (["rename", "dotfiles/claude", "dotfiles/c"], "EBUSY"),
        (["rename", "dotfiles", "dotfiles.moved"], "EBUSY"),     # an ancestor: pinned
        # Targets outside every write root: read-only like the rest of the host.
        (["write", ".profile"], "EROFS"),
        (["write", ".zprofile"], "EROFS"),
        # What is not protected stays writable.
        (["write", "dotfiles/README", "changed\n"], "OK"),
        (["write", "dotfiles/README", "mine\n"], "OK"),
    ]
    check(sb, e, "--allow-read", sb.outside, env=env)
    check_tools(sb, [
        ("rm -f .bashrc", ["cannot remove", BUSY]),
        ("mv .bashrc b", ["cannot move", BUSY]),
        ("ln -sf /etc/passwd .bashrc", [".bashrc", BUSY]),
        ("echo evil > .bashrc", [".bashrc", RO]),
        ("sed -i s/real/evil/ .bashrc", [BUSY]),
        ("sed -i --follow-symlinks s/real/evil/ .bashrc", [BUSY]),
        ("echo evil >> .profile", [".profile", RO]),
        ("mkdir .vscode/x", [RO]),
    ], "--allow-read", sb.outside, env=env)
    after = snapshot(sb.ws)
    assert after == before, snapshot_diff(before, after)
    assert_registry_clean(reg)


def test_odd_protected_links_never_stop_cordon_from_starting(sb):
    """A link whose target is invisible inside (outside the sandbox's view),
    dangling outside the write roots, or a loop: cordon starts, the link is
    pinned."""
    sb.write("outside/profile", "outside profile\n")
    links = {".profile": os.path.join(sb.outside, "profile"),   # not visible: private /tmp
             ".envrc": "/nonexistent/envrc",
             ".zshrc": ".zshrc",                                  # a loop
             ".gitconfig": ".gitmodules", ".gitmodules": ".gitconfig"}
    for name, target in links.items():
        os.symlink(target, os.path.join(sb.ws, name))
    own_tree(sb, sb.ws)
    before = snapshot(sb.ws)
    e = []
    for name, target in links.items():
        e += [(["readlink", name], "OK", target), (["unlink", name], "EBUSY"),
              (["rename", name, name + ".moved"], "EBUSY")]
    e += [(["read", ".profile"], "ENOENT"), (["read", ".zshrc"], "ELOOP"),
          (["write", ".zshrc"], "ELOOP"), (["write", ".envrc"], "ENOENT")]
    check(sb, e)
    assert snapshot(sb.ws) == before, snapshot_diff(before, snapshot(sb.ws))


def test_missing_targets_behind_protected_links_cannot_be_created(sb):
    """A dangling protected link whose target would lie in a write root: the
    missing target gets a placeholder, as a missing name at the top does (so
    creating it through the link or directly fails: EROFS to write in it,
    EEXIST to make it, since the name is taken), and it is gone after."""
    sb.mkdir("home/ws/dotfiles")
    sb.write("home/ws/dotfiles/claude/commands/c.md", "real command\n")
    sb.write("home/ws/dotfiles/README", "mine\n")
    os.symlink("dotfiles/zshrc", os.path.join(sb.ws, ".zshrc"))
    os.symlink("dotfiles/claude", os.path.join(sb.ws, ".claude"))
    os.symlink("dotfiles/missing/envrc", os.path.join(sb.ws, ".envrc"))
    own_tree(sb, sb.ws)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    try:
        check(sb, [
            (["write", ".zshrc"], "EROFS"),
            (["append", ".zshrc"], "EROFS"),
            (["write", "dotfiles/zshrc"], "EROFS"),
            (["read", ".zshrc"], "OK", ""),
            (["unlink", "dotfiles/zshrc"], "EBUSY"),
            (["write", ".claude/settings.json", "{\"hooks\": \"evil\"}"], "EROFS"),
            (["write", ".claude/settings.local.json"], "EROFS"),
            (["mkdir", ".claude/agents"], "EEXIST"),       # the placeholder
            (["write", ".claude/agents/x.md"], "EROFS"),
            (["read", ".claude/commands/c.md"], "OK", "real command\n"),
            (["write", ".claude/commands/c.md"], "EROFS"),
            # Two levels missing: the first missing directory is the placeholder.
            (["write", ".envrc"], "EROFS"),
            (["mkdir", "dotfiles/missing"], "EEXIST"),
            (["write", "dotfiles/missing/envrc"], "EROFS"),
            # The rest of dotfiles stays writable.
            (["write", "dotfiles/README", "changed\n"], "OK"),
            (["write", "dotfiles/README", "mine\n"], "OK"),
        ], env=env)
    finally:
        after = snapshot(sb.ws)
    assert after == before, snapshot_diff(before, after)
    assert_registry_clean(reg)
