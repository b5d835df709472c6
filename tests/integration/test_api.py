"""libcordon's process API (cordon_sandbox_*, include/cordon.h), driven by
tests/api/spawn.c the way a multithreaded host would use it: sandboxes
spawned from several threads at once with their stdout on pipes, the audit
stream read from its pipe, a live update of the network rules, a kill, and
refusals. The spawned binary is the cordon under test ($CORDON_BINARY).
"""
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from conftest import CORDON_BIN

SPAWN = os.path.join(os.path.dirname(CORDON_BIN), "tests", "api-spawn")


@pytest.fixture
def spawn(sb):
    if not os.path.exists(SPAWN):
        pytest.skip("tests/api-spawn is not built next to CORDON_BIN")
    exe = os.path.join(os.path.dirname(sb.bin), "api-spawn")
    shutil.copy2(SPAWN, exe)
    os.chmod(exe, 0o755)

    def run(*args, env=None, timeout=60):
        e = sb.env({"CORDON_BINARY": sb.bin})
        if env:
            e.update(env)
        return subprocess.run(sb.argv_plain([exe] + list(args)), cwd=sb.ws, env=e,
                              capture_output=True, text=True, timeout=timeout)
    return run


class Origin:
    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"hello\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def settings(sb, port):
    return json.dumps({
        "network": {"allowedDomains": [], "hosts": {"api.test": "127.0.0.1"}},
        "filesystem": {"denyRead": [], "allowWrite": [sb.ws], "denyWrite": []}})


def test_sandboxes_from_eight_threads_at_once(spawn):
    p = spawn("threads", "8")
    assert (p.returncode, p.stdout) == (0, "ok threads 8\n"), p.stderr


def test_the_audit_stream_comes_through_its_pipe(spawn, sb):
    o = Origin()
    try:
        url = "http://api.test:%d/" % o.port
        p = spawn("audit", url, env={"SPAWN_SETTINGS": settings(sb, o.port)})
    finally:
        o.stop()
    lines = p.stdout.splitlines()
    # curl's own output (the 403) and the records, in order
    assert "403" in lines, p.stdout + p.stderr
    recs = [l for l in lines if l.startswith("record ")]
    assert recs[0] == "record run.start allow" and recs[-1] == "record run.exit allow", recs
    assert "record net.connect deny" in recs
    assert lines[-1] == "status 0 0"


def test_a_live_update_allows_a_host_for_the_next_connection(spawn, sb):
    o = Origin()
    d = sb.path("home", "ws")
    for n in ("a", "b"):
        os.mkfifo(os.path.join(d, n), 0o600)
        sb.own(os.path.join(d, n))
    try:
        url = "http://api.test:%d/" % o.port
        p = spawn("update", d, url, "api.test:%d,127.0.0.1:%d" % (o.port, o.port),
                  env={"SPAWN_SETTINGS": settings(sb, o.port)})
    finally:
        o.stop()
    # before the update: refused; after it: the origin answers
    assert p.stdout.splitlines() == ["403", "200", "status 0 0"], p.stdout + p.stderr


def test_kill_reaches_the_sandbox(spawn):
    p = spawn("kill")
    assert p.stdout == "status 0 137\n", p.stderr


def test_refusals(spawn):
    """A working directory that does not exist fails in posix_spawn (ENOENT,
    nothing ran); options of another size are refused (EINVAL)."""
    p = spawn("fail")
    assert p.stdout == "spawn 2\nsize 22\n", p.stderr
