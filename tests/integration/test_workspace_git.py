"""git in a workspace without a repository (issue: workspace protection,
"Done when" 3).

A missing .git gets no placeholder, so `git init`, `git add` and `git commit`
work. A repository created during the run could not be protected in advance:
at exit cordon warns on stderr about every hook in it other than git's
*.sample files (they will run outside the sandbox) and writes an "fs.hook"
audit record with the path. Every test runs as root and as uid 65534.
"""
import json
import os

from workspace_util import GIT_ENV, host_run, private_registry


def audit_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def hook_warnings(stderr):
    return [l for l in stderr.splitlines() if "hook" in l and "warning" in l]


def test_git_init_add_commit_work_and_new_hooks_are_reported(sb):
    sb.write("home/ws/f.txt", "tracked\n")
    audit = sb.path("outside", "audit.jsonl")
    env, _ = private_registry(sb)
    env.update(GIT_ENV)
    script = (
        "set -e\n"
        "git init -q\n"
        "git add f.txt\n"
        "git commit -qm first\n"
        "git log --format=%s\n"
        "printf '#!/bin/sh\\nexit 0\\n' > .git/hooks/pre-commit\n"
        "chmod +x .git/hooks/pre-commit\n"
        "mkdir -p sub/dir\n"
        "git init -q sub/dir/inner\n"
        "printf '#!/bin/sh\\n' > sub/dir/inner/.git/hooks/post-checkout\n"
        "echo '# edited' >> .git/hooks/pre-push.sample\n")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c", script, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "first\n"
    hooks = [os.path.join(sb.ws, ".git/hooks/pre-commit"),
             os.path.join(sb.ws, "sub/dir/inner/.git/hooks/post-checkout")]
    warns = hook_warnings(p.stderr)
    assert len(warns) == 2, p.stderr
    for h in hooks:
        assert any(l.startswith("cordon: warning:") and l.endswith(h) for l in warns), p.stderr
    assert ".sample" not in p.stderr
    recs = [r for r in audit_records(audit) if r["event"] == "fs.hook"]
    assert sorted(r["path"] for r in recs) == sorted(hooks), recs
    for r in recs:
        assert r["v"] == 1 and "ts" in r
    # The repository is real on the host, and no placeholder is left.
    log = host_run(sb, ["git", "-C", sb.ws, "log", "--format=%s"])
    assert log.stdout == "first\n"
    assert sorted(os.listdir(sb.ws)) == [".git", "f.txt", "sub"]


def test_sample_hooks_and_no_hooks_are_not_reported(sb):
    audit = sb.path("outside", "audit.jsonl")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c",
               "git init -q && echo '# edited' >> .git/hooks/pre-commit.sample && "
               "cp .git/hooks/update.sample .git/hooks/my.sample && git init -q a/b",
               env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    assert hook_warnings(p.stderr) == [], p.stderr
    assert [r for r in audit_records(audit) if r["event"] == "fs.hook"] == []
    assert os.path.isfile(os.path.join(sb.ws, ".git", "hooks", "my.sample"))


def test_hooks_of_a_repository_that_existed_at_start_cannot_be_written(sb):
    """The counterpart: a repository that exists at start is protected, so
    there is nothing to report at exit."""
    host_run(sb, ["git", "init", "-q", sb.ws])
    audit = sb.path("outside", "audit.jsonl")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c",
               "echo evil > .git/hooks/pre-commit; echo rc=$?", env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\n" and "Read-only file system" in p.stderr, p.stderr
    assert hook_warnings(p.stderr) == []
    assert [r for r in audit_records(audit) if r["event"] == "fs.hook"] == []
    assert not os.path.exists(os.path.join(sb.ws, ".git", "hooks", "pre-commit"))


def test_other_new_repository_layouts_and_exec_config_are_reported(sb):
    """Hooks in a repository made with --separate-git-dir, or in a bare one
    made at the top of the workspace, and configuration keys whose value git
    runs (core.hooksPath, core.fsmonitor, an alias starting with "!") in any
    new repository, are reported; a plain alias and ordinary keys are not."""
    audit = sb.path("outside", "audit.jsonl")
    script = (
        "set -e\n"
        "mkdir sep && cd sep && git init -q --separate-git-dir=../meta . && cd ..\n"
        "printf '#!/bin/sh\\n' > meta/hooks/pre-commit\n"
        "git init -q hp && git -C hp config core.hooksPath myhooks\n"
        "git -C hp config alias.st status\n"
        "git -C hp config alias.x '!touch /tmp/x'\n"
        "git init -q fm && git -C fm config core.fsmonitor 'touch /tmp/y'\n"
        "git -C fm config user.name someone\n"
        "git init -q --bare .\n"
        "printf '#!/bin/sh\\n' > hooks/post-receive\n")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c", script, env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    ws = sb.ws
    got = sorted((r["path"], r.get("key")) for r in audit_records(audit)
                 if r["event"] == "fs.hook")
    want = sorted([
        (os.path.join(ws, "meta/hooks/pre-commit"), None),
        (os.path.join(ws, "hp/.git/config"), "core.hookspath"),
        (os.path.join(ws, "hp/.git/config"), "alias.x"),
        (os.path.join(ws, "fm/.git/config"), "core.fsmonitor"),
        (os.path.join(ws, "hooks/post-receive"), None),
    ])
    assert got == want, got
    warns = [l for l in p.stderr.splitlines() if l.startswith("cordon: warning:")]
    assert len(warns) == 5, p.stderr
    assert any("sets core.fsmonitor" in l and l.endswith("fm/.git/config") for l in warns), warns


def test_a_bare_repository_that_existed_at_start_is_not_reported(sb):
    host_run(sb, ["git", "init", "-q", "--bare", sb.ws])
    audit = sb.path("outside", "audit.jsonl")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c", "echo x > new.txt", env=GIT_ENV)
    assert p.returncode == 0, p.stderr
    assert [r for r in audit_records(audit) if r["event"] == "fs.hook"] == []
    assert "warning" not in p.stderr, p.stderr


def test_crafted_new_repositories_cannot_stall_or_escape_the_exit_check(sb):
    """The exit check reads what the command made: a config that is a
    symlink to /dev/zero or a FIFO must not hang it; a .git symlink, a key on
    the section's line, a UTF-8 BOM, a config.worktree and a commondir
    leading to another (HEAD-less) repository are all read as git reads
    them."""
    audit = sb.path("outside", "audit.jsonl")
    fsm = "[core]\\n\\tfsmonitor = x\\n"
    script = (
        "set -e\n"
        "mkdir -p z/.git/hooks && ln -s /dev/zero z/.git/config\n"
        "mkdir -p f/.git && mkfifo f/.git/config\n"
        "mkdir -p h/.git && ln -s /usr/bin h/.git/hooks\n"
        # node_modules is not scanned: only the .git symlink leads there
        "git init -q node_modules/real && mkdir lnk && ln -s ../node_modules/real/.git lnk/.git\n"
        "printf '#!/bin/sh\\n' > node_modules/real/.git/hooks/pre-commit\n"
        "git init -q hdr && printf '[core] fsmonitor = x\\n' > hdr/.git/config\n"
        "git init -q bom && printf '\\357\\273\\277[core]\\n\\tfsmonitor = x\\n' > bom/.git/config\n"
        "git init -q wt && printf '" + fsm + "' > wt/.git/config.worktree\n"
        "mkdir -p evil/objects && printf '" + fsm + "' > evil/config\n"
        "mkdir -p cd/.git && echo 'ref: refs/heads/main' > cd/.git/HEAD && "
        "echo ../../evil > cd/.git/commondir\n")
    p = sb.run("--audit", audit, "--", "/bin/sh", "-c", script, env=GIT_ENV, timeout=60)
    assert p.returncode == 0, p.stderr
    ws = sb.ws
    got = sorted((r["path"], r.get("key")) for r in audit_records(audit)
                 if r["event"] == "fs.hook")
    want = sorted([
        (os.path.join(ws, "h/.git/hooks"), None),
        (os.path.join(ws, "node_modules/real/.git/hooks/pre-commit"), None),
        (os.path.join(ws, "hdr/.git/config"), "core.fsmonitor"),
        (os.path.join(ws, "bom/.git/config"), "core.fsmonitor"),
        (os.path.join(ws, "wt/.git/config.worktree"), "core.fsmonitor"),
        (os.path.join(ws, "evil/config"), "core.fsmonitor"),
    ])
    assert got == want, got
