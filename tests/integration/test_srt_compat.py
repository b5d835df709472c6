"""Behaviour srt users rely on (shared/reference/srt-compat.md): the implicit
write paths /dev/stdout and /dev/stderr, parent proxies from the caller's
environment, --control-fd failures, `-c` through bash."""
import os
import signal
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
    # init reopened the read-only file through a read-only mount (stdio.c)
    assert "cannot create /dev/stdout: Read-only file system" in p.stderr, p.stderr
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


# ---------------------------------------------------------------------------
# 2. a parent proxy from the caller's environment that cordon cannot use

import http.server  # noqa: E402
import threading  # noqa: E402


@pytest.fixture
def loopback_http():
    """An HTTP server on the host's 127.0.0.1 that answers every GET with
    "via-parent PATH" (so it serves as a parent proxy and as a server)."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            b = ("via-parent %s\n" % self.path).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


CURL = 'curl --noproxy "" -sS -m5 -o /dev/null -w "%{http_code}\\n" '


@pytest.mark.parametrize("var,url", [
    ("HTTPS_PROXY", "https://alice:s3cret@proxy.invalid:443"),
    ("https_proxy", "socks5://proxy.invalid:1080"),
    ("HTTP_PROXY", "https://proxy.invalid"),
])
def test_unusable_env_parent_proxy_does_not_stop_runs(sb, var, url):
    p = sb.sh("echo ran", env={var: url})
    assert (p.returncode, p.stdout) == (0, "ran\n"), p.stderr
    warn = [l for l in p.stderr.splitlines() if l.startswith("cordon: warning: ")]
    assert len(warn) == 1, p.stderr
    assert var + "=" in warn[0] and "proxy.invalid" in warn[0], warn
    assert "s3cret" not in p.stderr and "alice" not in p.stderr


def test_unusable_env_parent_proxy_refuses_what_needs_it(sb, loopback_http):
    """CONNECT would need the https:// parent: refused (502, audited), never
    sent direct around it; plain HTTP (no HTTP_PROXY) still works."""
    port = loopback_http
    audit = os.path.join(sb.home, "a.jsonl")
    p = sb.sh(CURL + "-p -x http://127.0.0.1:3128 http://127.0.0.1:%d/t; " % port +
              CURL + "http://127.0.0.1:%d/p; exit 0" % port,
              "--allow-domain", "127.0.0.1:%d" % port, "--audit", audit,
              env={"HTTPS_PROXY": "https://proxy.invalid:443"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["000", "200"], (p.stdout, p.stderr)
    assert "CONNECT tunnel failed, response 502" in p.stderr
    import json
    recs = [json.loads(l) for l in open(audit)]
    conn = [r for r in recs if r["event"] == "net.connect" and r.get("reason")]
    assert any("HTTPS_PROXY" in r["reason"] and "cannot be used" in r["reason"] for r in conn), recs


def test_env_parent_proxy_path_is_ignored(sb, loopback_http):
    """http://host:port/path in HTTP_PROXY: used, as curl and Go use it."""
    p = sb.sh('curl --noproxy "" -sS -m5 http://example.test/x', "--allow-domain", "example.test",
              env={"HTTP_PROXY": "http://127.0.0.1:%d/some/path" % loopback_http})
    assert p.returncode == 0, p.stderr
    assert p.stdout == "via-parent http://example.test:80/x\n"
    assert "warning" not in p.stderr


def test_settings_parent_proxy_error_names_file_pointer_and_value(sb):
    s = sb.settings({"network": {"allowedDomains": [],
                                 "parentProxy": {"https": "https://bob:pw9@proxy.invalid:443"}}})
    p = sb.sh("echo ran", "-s", s)
    assert p.returncode == 125 and p.stdout == ""
    assert p.stderr.startswith("cordon: %s: /network/parentProxy/https: "
                               "\"https://<credentials>@proxy.invalid:443\": " % s), p.stderr
    assert "pw9" not in p.stderr


# ---------------------------------------------------------------------------
# 3. --control-fd: a bad descriptor, and a channel that ends before any line

import time  # noqa: E402


@pytest.mark.parametrize("how", ["stdout", "write-only", "directory", "empty-file"])
def test_bad_control_fd_is_refused_before_anything_runs(sb, how):
    fds = []
    if how == "stdout":
        fd = 1
    elif how == "write-only":
        fd = os.open(sb.path("outside", "ctl"), os.O_WRONLY | os.O_CREAT, 0o644)
    elif how == "directory":
        fd = os.open(sb.outside, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = os.open(sb.write("outside/empty.ctl", ""), os.O_RDONLY)
    if fd > 2:
        fds.append(fd)
    try:
        p = sb.sh("touch ran", "--control-fd", str(fd), pass_fds=tuple(fds))
    finally:
        for f in fds:
            os.close(f)
    assert p.returncode == 125 and p.stdout == ""
    want = {"stdout": "--control-fd 1: must be 3 or more",
            "write-only": "--control-fd %d: not open for reading" % fd,
            "directory": "--control-fd %d: not open for reading" % fd,
            "empty-file": "--control-fd: the control channel closed before delivering any line"}
    assert p.stderr.startswith("cordon: " + want[how]), p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert not os.path.exists(os.path.join(sb.ws, "ran"))


def _control_closed_early(sb, script):
    r, w = os.pipe()
    with open(sb.path("outside", "out.txt"), "w") as out:
        p = subprocess.Popen(sb.argv(["--control-fd", str(r), "--", "/bin/sh", "-c", script]),
                             cwd=sb.ws, env=sb.env(), stdout=out, stderr=subprocess.PIPE,
                             text=True, pass_fds=(r,), start_new_session=True)
    os.close(r)
    try:
        # the command is up (it wrote its file) before the channel ends
        assert wait_for_file(os.path.join(sb.ws, "up"))
        os.close(w)
        w = -1
        _, err = p.communicate(timeout=30)
    finally:
        if w >= 0:
            os.close(w)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode, err, open(sb.path("outside", "out.txt")).read()


CLOSED_EARLY = ("cordon: --control-fd: the control channel closed before delivering any "
                "line; the command was ended (SIGTERM, then SIGKILL after 2 s)\n")


def wait_for_file(path, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def test_control_channel_closed_before_any_line_ends_the_command(sb):
    rc, err, out = _control_closed_early(
        sb, 'trap "echo got-TERM; exit 9" TERM; touch up; while :; do sleep 0.05; done')
    assert rc == 125
    assert out == "got-TERM\n"
    assert err == CLOSED_EARLY, err


def test_control_channel_closed_early_sigkill_after_two_seconds(sb):
    # The command ignores SIGTERM: only the SIGKILL ends it (it never exits
    # by itself, so rc 125 with "ignored-TERM" proves the kill came).
    rc, err, out = _control_closed_early(
        sb, 'trap "echo ignored-TERM" TERM; touch up; while :; do sleep 0.05; done; echo never')
    assert rc == 125
    assert out == "ignored-TERM\n"
    assert err == CLOSED_EARLY, err


def test_control_channel_closed_after_a_line_keeps_the_command(sb):
    """A line, then EOF, before the command starts: the command runs on
    until the test lets it finish (a file the test makes once cordon has had
    every chance to act on the EOF)."""
    r, w = os.pipe()
    os.write(w, b"\n")
    os.close(w)
    go = os.path.join(sb.ws, "go")
    p = subprocess.Popen(sb.argv(["--control-fd", str(r), "--", "/bin/sh", "-c",
                                  "touch up; while [ ! -e go ]; do sleep 0.05; done; echo done"]),
                         cwd=sb.ws, env=sb.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, pass_fds=(r,),
                         start_new_session=True)
    os.close(r)
    try:
        assert wait_for_file(os.path.join(sb.ws, "up"))
        time.sleep(0.5)  # not a timing assertion: room for a wrong kill to happen
        assert p.poll() is None, p.communicate()
        with open(go, "w"):
            pass
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert (p.returncode, out) == (0, "done\n"), err
    assert "--control-fd" not in err, err


# ---------------------------------------------------------------------------
# 4. -c runs bash, as srt; argv after -- is executed directly

def test_dash_c_runs_bash(sb):
    p = sb.run("-c", 'echo ${BASH_VERSION:+bash}; [[ 1 == 1 ]] && echo ok; echo $0')
    assert (p.returncode, p.stdout, p.stderr) == (0, "bash\nok\n/bin/bash\n", "")


def test_dash_c_falls_back_to_sh_without_bash_in_the_view(sb):
    p = sb.run("--deny-read", "/usr/bin/bash", "--deny-read", "/bin/bash",
               "-c", 'echo "[${BASH_VERSION:-}]"; echo $0; [ 1 = 1 ] && echo ok')
    assert (p.returncode, p.stdout) == (0, "[]\n/bin/sh\nok\n"), p.stderr


def test_argv_after_dashdash_is_not_reparsed_by_a_shell(sb):
    p = sb.run("--", "echo", "$HOME", "a  b", "'q'")
    assert (p.returncode, p.stdout) == (0, "$HOME a  b 'q'\n")


# ---------------------------------------------------------------------------
# 6. deliberate differences the migration table lists

def test_deny_read_covering_the_working_directory_is_refused(sb):
    s = sb.settings({"filesystem": {"denyRead": [sb.home]}})
    p = sb.sh("touch /tmp/x; echo ran", "-s", s)
    assert (p.returncode, p.stdout) == (125, ""), p.stderr
    assert p.stderr == ("cordon: sandbox setup failed: the working directory %s is not visible "
                        "in the sandbox (is it under a denyRead path?): No such file or "
                        "directory\n" % sb.ws), p.stderr
    # re-opened by allowWrite: runs
    s = sb.settings({"filesystem": {"denyRead": [sb.home], "allowWrite": ["."]}}, name="ok.json")
    p = sb.sh("echo ran", "-s", s)
    assert (p.returncode, p.stdout) == (0, "ran\n"), p.stderr


# ---------------------------------------------------------------------------
# 7. localhost:PORT in allowedDomains vs network.hostPorts (documented)

def test_localhost_entry_does_not_reach_the_host_but_host_ports_do(sb, loopback_http):
    port = loopback_http
    s = sb.settings({"network": {"allowedDomains": ["localhost:%d" % port]}})
    p = sb.sh(CURL + "-x http://127.0.0.1:3128 http://localhost:%d/" % port, "-s", s)
    assert p.stdout == "403\n", p.stderr
    assert "localhost resolves to a loopback address" in (p.summary or ""), p.summary
    s = sb.settings({"network": {"allowedDomains": [], "hostPorts": [port]}}, name="hp.json")
    p = sb.sh('curl -sS -m5 http://localhost:%d/x' % port, "-s", s)
    assert (p.returncode, p.stdout) == (0, "via-parent /x\n"), p.stderr
