"""Behaviour srt users rely on (shared/reference/srt-compat.md): the implicit
write paths /dev/stdout and /dev/stderr, parent proxies from the caller's
environment, --control-fd failures, `-c` through bash."""
import os
import shutil
import subprocess

import pytest

from conftest import NOBODY


def _run_to(sb, argv_tail, out_path, err_path=None, env=None, **kw):
    """cordon ARGV with stdout (and stderr) redirected to files the caller
    opened, as a shell's `> file` would."""
    with open(out_path, "w") as out:
        err = open(err_path, "a") if err_path else subprocess.PIPE
        try:
            p = subprocess.run(sb.argv(argv_tail), cwd=sb.ws, env=sb.env(env), stdout=out,
                               stderr=err, text=True, timeout=60, **kw)
        finally:
            if err_path:
                err.close()
    return p


# ---------------------------------------------------------------------------
# 1. /dev/stdout and /dev/stderr are implicit write paths

def visible(sb):
    """Settings that show the test's tree (under the private /tmp) read-only."""
    return sb.settings({"filesystem": {"allowRead": [sb.base]}})


def test_dev_stdout_reopens_a_file_outside_the_write_roots(sb):
    out = sb.write("outside/out.txt", "old contents\n")
    err = sb.write("outside/err.txt", "")
    other = sb.write("outside/other.txt", "keep\n")
    # stderr is opened for appending: `> /dev/stderr` then writes at 0.
    p = _run_to(sb, ["-s", visible(sb), "--", "/bin/sh", "-c",
                     'echo x > /dev/stdout; echo y >> /dev/stdout; echo e > /dev/stderr; '
                     'echo z > /proc/self/fd/1; '
                     'echo no > %s; echo no >> %s; echo no > %s/new.txt; exit 0'
                     % (other, other, sb.outside)], out, err)
    assert p.returncode == 0
    # `>` truncated the caller's file (the command could ftruncate fd 1 as well).
    assert open(out).read() == "z\n"
    e = open(err).read()
    assert e.startswith("e\n"), e
    assert "/dev/std" not in e and "/proc/self" not in e, e
    # The rule is on the one file, not its directory.
    assert open(other).read() == "keep\n"
    assert e.count("cannot create") == 3, e
    assert not os.path.exists(os.path.join(sb.outside, "new.txt"))


def test_dev_stdout_on_a_read_only_fd_gets_nothing(sb):
    """fd 1 opened read-only by the caller is not made writable by a reopen."""
    f = sb.write("outside/ro.txt", "keep\n")
    with open(f) as ro:
        p = subprocess.run(sb.argv(["-s", visible(sb), "--", "/bin/sh", "-c", "echo x >> /dev/stdout"]),
                           cwd=sb.ws, env=sb.env(), stdout=ro, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    assert p.returncode != 0
    assert "/dev/stdout" in p.stderr
    assert open(f).read() == "keep\n"


def test_dev_stdout_on_dev_null(sb):
    with open(os.devnull, "w") as null:
        p = subprocess.run(sb.argv(["--", "/bin/sh", "-c", "echo x > /dev/stdout && echo ok >&2"]),
                           cwd=sb.ws, env=sb.env(), stdout=null, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    assert (p.returncode, p.stderr) == (0, "ok\n")


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1)")
def test_dev_stderr_reopens_the_callers_terminal(sb):
    inner = "%s -- /bin/sh -c 'echo e > /dev/stderr && echo o > /dev/stdout && " \
            "test -t 1 1<>/dev/stdout && echo tty'" % sb.bin
    argv = ["script", "-qec", inner, "/dev/null"]
    if sb.user == "user":
        argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                "--clear-groups", "--"] + argv
    p = subprocess.run(argv, cwd=sb.ws, env=sb.env(), capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    out = p.stdout.replace("\r", "")
    assert p.returncode == 0, out + p.stderr
    assert out == "e\no\ntty\n", out
