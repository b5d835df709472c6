"""Placeholders across the life of runs (issue: workspace protection, "Done
when" 7).

SIGKILL of cordon, or of its whole process group, while placeholders guard
missing names: the watchdog (its own session) removes them, so the workspace
is exactly as before. Concurrent runs in one working directory share
placeholders through the registry: each keeps its own view until it ends and
the last one removes them. Every test runs as root and as uid 65534.
"""
import os
import random
import signal
import subprocess

import pytest

from helpers import own_tree, sleep_pids, wait_for
from workspace_util import (HeldRun, assert_registry_clean, git_init, mismatches,
                            private_registry, registry_lines, snapshot, snapshot_diff)


def same_tree(top, before):
    try:
        return snapshot(top) == before
    except FileNotFoundError:        # an entry went away while being listed
        return False


@pytest.mark.parametrize("target", ["cordon", "group"])
def test_sigkill_leaves_the_workspace_as_before(sb, target):
    git_init(sb, sb.ws)
    sb.write("home/ws/f.txt", "mine\n")
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    arg = "%d.%03d" % (random.randrange(40, 90), random.randrange(1000))
    p = sb.popen("--", "sleep", arg, env=env, start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: os.path.exists(os.path.join(sb.ws, ".bashrc")), 10), \
            "no placeholder appeared"
        assert wait_for(lambda: sleep_pids(arg), 10), "the command did not start"
        # 13 names, .git/commondir and .git/config.worktree
        assert len(registry_lines(reg)) == 15
        if target == "cordon":
            os.kill(p.pid, signal.SIGKILL)
        else:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        p.stderr.close()
    assert p.returncode == -signal.SIGKILL
    # Bounded waits (5 s), not timing assertions.
    wait_for(lambda: same_tree(sb.ws, before), 5)
    after = snapshot(sb.ws)
    assert after == before, snapshot_diff(before, after)
    assert wait_for(lambda: not sleep_pids(arg), 5), "the sandboxed command survived"
    wait_for(lambda: registry_lines(reg) == [], 5)
    assert_registry_clean(reg)


def concurrent_expectations(i, git_config, deny_secret):
    """What run i must see, at start and again after earlier runs ended."""
    return [
        (["read", "secret.txt"], "EACCES" if deny_secret else "OK",
         None if deny_secret else "shared secret\n"),
        (["append", ".git/config", ""], "OK" if git_config else "EROFS"),
        (["write", ".git/hooks/pre-commit"], "EROFS"),
        (["write", ".bashrc"], "EROFS"),
        (["stat", ".bashrc"], "OK", ["file", "644", 0]),
        (["mkdir", ".claude/commands"], "EROFS"),
        (["chmod", ".claude", "755"], "EROFS"),
        (["mkdir", ".vscode/x"], "EROFS"),
        (["rename", ".git", ".git.moved"], "EBUSY"),
        (["write", "run-%d.txt" % i, "run %d\n" % i], "OK"),
        (["read", "run-%d.txt" % i], "OK", "run %d\n" % i),
        (["unlink", "run-%d.txt" % i], "OK"),
    ]


def policy(sb, i):
    git_config, deny_secret = i % 4 in (0, 2), i % 4 in (1, 2)
    fs = {"allowWrite": ["."]}
    if git_config:
        fs["allowGitConfig"] = True
    if deny_secret:
        fs["denyRead"] = ["secret.txt"]
    return sb.settings({"filesystem": fs}, name="settings-%d.json" % i), git_config, deny_secret


def test_twenty_concurrent_runs_with_different_policies(sb):
    git_init(sb, sb.ws)
    sb.write("home/ws/secret.txt", "shared secret\n")
    own_tree(sb, sb.ws)
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    runs, expects = [], []
    try:
        # Run 0 starts first (it creates the placeholders), then the 19
        # others at once; all of them are running before any ends. Then they
        # end one by one, in order, each checking its view again first.
        for i in range(20):
            s, gc, ds = policy(sb, i)
            e = concurrent_expectations(i, gc, ds)
            expects.append(e)
            ops = [x[0] for x in e]
            runs.append(HeldRun(sb, ops, ops, "-s", s, env=env))
            if i == 0:
                runs[0].wait_ready()
        for r in runs[1:]:
            r.wait_ready()
        bad = []
        for i, r in enumerate(runs):
            bad += ["run %d at start: %s" % (i, b) for b in mismatches(expects[i], r.first)]
        for i, r in enumerate(runs):
            second = r.release()
            if r.rc != 0 or second is None:
                bad.append("run %d: rc=%s %s" % (i, r.rc, r.err))
                continue
            bad += ["run %d after runs 0..%d ended: %s" % (i, i - 1, b)
                    for b in mismatches(expects[i], second)]
    finally:
        for r in runs:
            r.kill()
    after = snapshot(sb.ws)
    assert not bad, "\n".join(bad)
    assert after == before, snapshot_diff(before, after)
    assert_registry_clean(reg)


def test_a_run_keeps_its_protection_when_an_earlier_run_ends(sb):
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    e = [(["write", ".bashrc"], "EROFS"), (["write", ".gitconfig"], "EROFS"),
         (["mkdir", ".claude/commands"], "EROFS"), (["mkdir", ".vscode/x"], "EROFS")]
    ops = [x[0] for x in e]
    a = HeldRun(sb, ops, ops, env=env)
    b = None
    try:
        first_a = a.wait_ready()
        b = HeldRun(sb, ops, ops, env=env)
        first_b = b.wait_ready()
        a.release()
        second_b = b.release()
    finally:
        a.kill()
        if b:
            b.kill()
    after = snapshot(sb.ws)
    bad = ["A: " + x for x in mismatches(e, first_a)] + \
        ["B at start: " + x for x in mismatches(e, first_b)] + \
        ["B after A ended: " + x for x in mismatches(e, second_b or [])]
    assert a.rc == 0 and b.rc == 0, (a.err, b.err)
    assert not bad, "\n".join(bad)
    assert after == before, snapshot_diff(before, after)
    assert_registry_clean(reg)


def test_a_run_with_a_wider_write_root_shares_a_narrower_runs_placeholders(sb):
    """Run A works in ws/sub (its write root), run B in ws: B's scan finds
    A's placeholders in ws/sub and shares them, so they stay (read-only in B)
    after A ends, and go when B ends."""
    sub = sb.mkdir("home/ws/sub")
    env, reg = private_registry(sb)
    before = snapshot(sb.ws)
    e = [(["write", "sub/.bashrc"], "EROFS"), (["mkdir", "sub/.claude/commands"], "EROFS"),
         (["rename", "sub", "sub.moved"], "EBUSY"), (["write", ".bashrc"], "EROFS")]
    ops = [x[0] for x in e]
    a = HeldRun(sb, [["write", ".bashrc"]], [], env=env, cwd=sub)
    b = None
    try:
        assert a.wait_ready() == [("EROFS", None)]
        b = HeldRun(sb, ops, ops, env=env)
        first_b = b.wait_ready()
        a.release()
        second_b = b.release()
    finally:
        a.kill()
        if b:
            b.kill()
    assert a.rc == 0 and b.rc == 0, (a.err, b.err)
    bad = ["B at start: " + x for x in mismatches(e, first_b)] + \
        ["B after A ended: " + x for x in mismatches(e, second_b or [])]
    assert not bad, "\n".join(bad)
    after = snapshot(sb.ws)
    assert after == before, snapshot_diff(before, after)
    assert_registry_clean(reg)
