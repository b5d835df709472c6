"""Lifetime of the sandbox (issue: foundation): signals sent to cordon reach
the command and cordon exits with the command's status; nothing of the sandbox
outlives cordon, even when cordon is SIGKILLed, or the command. Exit codes
themselves are in test_basics.py. Every test runs as root and as uid 65534.
"""
import os
import signal
import subprocess
import uuid

import pytest

from helpers import kill_pids, sleep_pids, wait_for


def unique_sleep_arg():
    """A sleep duration no other process on the host uses, to find the
    sandbox's sleeps from the host by their command line."""
    return "1000.%d" % (uuid.uuid4().int % 10**12)


def in_child_pid_namespace(pid):
    """True when pid lives in a pid namespace below ours (NSpid has two ids)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return len(line.split()) > 2
    except OSError:
        pass
    return False


def start_trapping(sb, signame, arg):
    # `wait` for a background sleep: the trap runs as soon as the signal
    # arrives, and no foreground child's death makes the shell print anything
    script = ('trap \'echo "caught $1" > caught; exit 42\' "$1"; : > ready; '
              'sleep "$2" & wait')
    return sb.popen("--", "/bin/sh", "-c", script, "sh", signame, arg,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


RELAYED = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2, signal.SIGWINCH]


@pytest.mark.parametrize("sig", RELAYED, ids=[signal.Signals(s).name[3:] for s in RELAYED])
def test_signal_to_cordon_reaches_the_command(sb, sig):
    name = signal.Signals(sig).name[3:]
    arg = unique_sleep_arg()
    proc = start_trapping(sb, name, arg)
    try:
        assert wait_for(lambda: (os.path.exists(sb.ws + "/ready") and sleep_pids(arg)) or
                        proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_pids(sleep_pids(arg))
    # the command's handler ran, and cordon exited with the command's status
    # rather than dying of the signal itself
    assert proc.returncode == 42, err
    with open(sb.ws + "/caught") as f:
        assert f.read() == "caught %s\n" % name
    assert err == ""


def test_sigterm_without_handler_is_128_plus_15(sb):
    arg = unique_sleep_arg()
    proc = sb.popen("--", "/bin/sh", "-c", 'exec sleep "$1"', "sh", arg,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait until sh has become sleep, so that the signal meets sleep's
        # default action and not a shell that is still starting
        assert wait_for(lambda: sleep_pids(arg) or proc.poll() is not None)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_pids(sleep_pids(arg))
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err == ""


def test_sigkill_of_cordon_leaves_nothing_alive(sb):
    arg = unique_sleep_arg()
    proc = sb.popen("--", "/bin/sh", "-c", 'sleep "$1" & sleep "$1" & wait', "sh", arg,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(sleep_pids(arg)) == 2 or proc.poll() is not None)
        sleeps = sleep_pids(arg)
        assert len(sleeps) == 2
        # they are the sandbox's (a pid namespace below ours)
        assert all(in_child_pid_namespace(p) for p in sleeps)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=20) == -signal.SIGKILL
        left = wait_for(lambda: not sleep_pids(arg), timeout=5) or sleep_pids(arg)
        assert left is True, "still alive after cordon was killed: %s" % left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_pids(sleep_pids(arg))


def test_background_children_die_with_the_command(sb):
    arg = unique_sleep_arg()
    # one plain background child and one that left the session and was
    # reparented to the sandbox's init; the command waits until both run
    script = ('sleep "$1" & (setsid sleep "$1" &); '
              'while [ "$(pgrep -c -f "^sleep $1\\$")" != 2 ]; do sleep 0.01; done; '
              'echo started')
    try:
        p = sb.run("--", "/bin/sh", "-c", script, "sh", arg, timeout=30)
        assert p.returncode == 0, p.stderr
        assert p.stdout == "started\n"
        left = wait_for(lambda: not sleep_pids(arg), timeout=5) or sleep_pids(arg)
        assert left is True, "still alive after the command exited: %s" % left
    finally:
        kill_pids(sleep_pids(arg))


def test_orphans_are_reaped(sb):
    """A process orphaned inside the sandbox is reparented to the sandbox's
    init, which must reap it: no zombie stays behind while the command runs."""
    script = ('(true &); (true &); i=0; '
              'while [ "$(ps -eo stat= | grep -c "^Z")" != 0 ] && [ $i -lt 1000 ]; '
              'do i=$((i+1)); sleep 0.01; done; ps -eo stat=,comm=')
    p = sb.run("--", "/bin/sh", "-c", script, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines()]
    assert not [r for r in rows if r[0].startswith("Z")]
    # what is left: init (a copy of cordon), the command and its ps
    assert sorted(r[1] for r in rows) == ["cordon", "ps", "sh"]
