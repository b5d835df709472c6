"""The recipes in docs/recipes/ (issue 18), each run as written.

The settings, .mcp.json, wrapper script and expected outputs are read from
the Markdown itself (the fenced block after each `<!-- recipe: NAME -->`
marker), with the documents' /home/me and /home/me/project replaced by the
test's own home and workspace, so a recipe cannot drift from what cordon
does. Every test runs as root and as uid 65534.
"""
import base64
import hashlib
import io
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import zipfile

import pytest

from conftest import SANITIZER_MARKERS
from egress_lab import PUBLIC4
from helpers import PY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = os.path.join(REPO, "docs", "recipes")


def recipe_block(doc, name):
    with open(os.path.join(RECIPES, doc)) as f:
        text = f.read()
    m = re.search(r"<!-- recipe: %s -->\n```[a-z]*\n(.*?)```" % re.escape(name), text, re.S)
    assert m, "%s: no block %s" % (doc, name)
    return m.group(1)


def localise(sb, text):
    """The documents' paths, as the test's."""
    return text.replace("/home/me/project", sb.ws).replace("/home/me", sb.home)


def harness_visible(sb, text):
    """The recipe's settings, plus the test's directory in allowRead. The
    test's home lives under the host's /tmp, which the sandbox replaces with
    a private /tmp: without this the home would be invisible inside, not
    merely denied. (A real /home/me is visible.) denyRead entries inside it
    still win, being deeper."""
    d = json.loads(text)
    d.setdefault("filesystem", {}).setdefault("allowRead", []).append(sb.base)
    return json.dumps(d, indent=2)


def no_sanitizer_reports(err):
    for m in SANITIZER_MARKERS:
        assert m not in err, "sanitizer report:\n" + err


def path_env(sb, extra=None):
    """The test's environment with cordon's directory first in PATH, as when
    cordon is installed: the recipes call it by name."""
    env = sb.env(extra)
    env["PATH"] = os.path.dirname(sb.bin) + ":" + env["PATH"]
    return env


# ---------------------------------------------------------------------------
# 1. an MCP server in .mcp.json

MCP_SERVER = r'''
import errno, json, os, sys

TOOLS = [
    {"name": "read_note", "description": "Read a note",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}},
                     "required": ["path"]}},
    {"name": "write_note", "description": "Write a note",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"},
                                                      "text": {"type": "string"}},
                     "required": ["path", "text"]}},
]

def send(msg):
    msg["jsonrpc"] = "2.0"
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()

def result(text, error=False):
    return {"content": [{"type": "text", "text": text}], "isError": error}

for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue  # a notification
    mid, method, params = msg["id"], msg["method"], msg.get("params", {})
    if method == "initialize":
        send({"id": mid, "result": {"protocolVersion": params["protocolVersion"],
                                    "capabilities": {"tools": {}},
                                    "serverInfo": {"name": "notes", "version": "1.0"}}})
    elif method == "tools/list":
        send({"id": mid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        args = params["arguments"]
        path = os.path.expanduser(args["path"])
        try:
            if params["name"] == "read_note":
                with open(path) as f:
                    send({"id": mid, "result": result(f.read())})
            else:
                with open(path, "w") as f:
                    f.write(args["text"])
                send({"id": mid, "result": result("written")})
        except OSError as e:
            send({"id": mid, "result": result(errno.errorcode[e.errno], True)})
    else:
        send({"id": mid, "error": {"code": -32601, "message": "method not found"}})
'''


class Stdio:
    """A JSON-RPC peer over a child's stdin and stdout, one message a line."""

    def __init__(self, proc):
        self.p = proc
        self.buf = b""
        self.lines = []
        self.n = 0

    def request(self, method, params=None):
        self.n += 1
        msg = {"jsonrpc": "2.0", "id": self.n, "method": method}
        if params is not None:
            msg["params"] = params
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()
        resp = self.read()
        assert resp.get("id") == self.n, resp
        return resp

    def notify(self, method):
        self.p.stdin.write((json.dumps({"jsonrpc": "2.0", "method": method}) + "\n").encode())
        self.p.stdin.flush()

    def read(self, timeout=30):
        fd = self.p.stdout.fileno()
        while b"\n" not in self.buf:
            r, _, _ = select.select([fd], [], [], timeout)
            assert r, "no answer from the server within %ds" % timeout
            chunk = os.read(fd, 65536)
            assert chunk, "the server closed stdout; stderr:\n" + self.p.stderr.read().decode()
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        self.lines.append(line)
        msg = json.loads(line)
        assert msg.get("jsonrpc") == "2.0", line
        return msg


def tool(peer, name, **args):
    r = peer.request("tools/call", {"name": name, "arguments": args})["result"]
    return r["content"][0]["text"], r["isError"]


def test_mcp_server_wrapped_in_mcp_json(sb):
    sb.write("home/mcp/notes_server.py", MCP_SERVER)
    sb.mkdir("home/notes")
    sb.write("home/notes/todo.txt", "buy milk\n")
    sb.mkdir("home/.ssh", 0o700)
    sb.write("home/.ssh/id_ed25519", "PRIVATE KEY\n", 0o600)
    sb.mkdir("home/.config/cordon")
    sb.write("home/.config/cordon/mcp-notes.json",
             harness_visible(sb, localise(sb, recipe_block("mcp-server.md", "mcp-settings"))))
    mcp_json = sb.write("home/ws/.mcp.json", localise(sb, recipe_block("mcp-server.md",
                                                                       "mcp-json")))
    with open(mcp_json) as f:
        server = json.load(f)["mcpServers"]["notes"]
    assert server["command"] == "cordon"
    # Exactly the command line of the .mcp.json, as an MCP client starts it.
    argv = sb.argv([])[:-1] + [server["command"]] + server["args"]
    p = subprocess.Popen(argv, cwd=sb.ws, env=path_env(sb), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        peer = Stdio(p)
        init = peer.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                           "clientInfo": {"name": "test", "version": "0"}})
        assert init["result"]["serverInfo"] == {"name": "notes", "version": "1.0"}
        peer.notify("notifications/initialized")
        names = [t["name"] for t in peer.request("tools/list")["result"]["tools"]]
        assert names == ["read_note", "write_note"]
        assert tool(peer, "read_note", path="~/notes/todo.txt") == ("buy milk\n", False)
        assert tool(peer, "write_note", path="~/notes/new.txt", text="from the server") == \
            ("written", False)
        assert tool(peer, "read_note", path="~/.ssh/id_ed25519") == ("EACCES", True)
        assert tool(peer, "write_note", path="~/elsewhere.txt", text="x") == ("EROFS", True)
        assert tool(peer, "write_note", path=sb.ws + "/x.txt", text="x") == ("EROFS", True)
        p.stdin.close()
        assert p.wait(30) == 0
        err = p.stderr.read().decode()
        assert p.stdout.read() == b""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    no_sanitizer_reports(err)
    # cordon's only word: at exit, what it blocked (the two writes above).
    assert err == ("cordon: blocked 2 writes (%s (not in allowWrite), ...); run with --audit "
                   "FILE for every record\n" % sb.path("home/elsewhere.txt")), err
    with open(sb.path("home/notes/new.txt")) as f:
        assert f.read() == "from the server"
    assert not os.path.exists(sb.path("home/elsewhere.txt"))
    assert len(peer.lines) == peer.n  # every line on stdout was an answer


def test_mcp_wrong_settings_fail_before_the_server_starts(sb):
    """A client shows the server as failed: nothing on stdout, exit 125, the
    reason on stderr."""
    sb.write("home/mcp/notes_server.py", MCP_SERVER)
    sb.mkdir("home/.config/cordon")
    sb.write("home/.config/cordon/mcp-notes.json", '{"filesystem": {"alowWrite": []}}')
    with open(sb.write("home/ws/.mcp.json", localise(sb, recipe_block("mcp-server.md",
                                                                      "mcp-json")))) as f:
        server = json.load(f)["mcpServers"]["notes"]
    argv = sb.argv([])[:-1] + [server["command"]] + server["args"]
    p = subprocess.run(argv, cwd=sb.ws, env=path_env(sb), input=b"", capture_output=True,
                       timeout=60)
    assert p.returncode == 125
    assert p.stdout == b""
    assert b"/filesystem/alowWrite" in p.stderr


# ---------------------------------------------------------------------------
# 2. cordon as an agent's shell

def agent_settings(sb):
    sb.mkdir("home/.ssh", 0o700)
    sb.write("home/.ssh/id_ed25519", "PRIVATE KEY\n", 0o600)
    sb.mkdir("home/.config/cordon")
    return sb.write("home/.config/cordon/agent.json",
                    harness_visible(sb, localise(sb, recipe_block("agent-shell.md",
                                                                  "agent-settings"))))


def test_agent_shell_runs_shell_strings_like_srt(sb):
    s = agent_settings(sb)
    p = sb.run("--settings", s, "-c", 'read line; echo "got:$line" | tr a-z A-Z && (exit 3)',
               input="hello\n")
    assert (p.returncode, p.stdout, p.stderr) == (3, "GOT:HELLO\n", "")
    p = sb.run("--settings", s, "-c", "echo made > made.txt && cat made.txt && echo $0")
    assert (p.returncode, p.stdout) == (0, "made\n/bin/bash\n"), p.stderr
    with open(os.path.join(sb.ws, "made.txt")) as f:
        assert f.read() == "made\n"


def test_agent_shell_boundaries(sb):
    # -c runs bash, whose failed redirection is status 1 (dash's is 2)
    s = agent_settings(sb)
    sb.write("home/ws/.mcp.json", '{"mcpServers": {}}\n')
    p = sb.run("--settings", s, "-c", "echo x > ../outside.txt")
    assert p.returncode == 1 and "Read-only file system" in p.stderr, p.stderr
    assert not os.path.exists(sb.path("home/outside.txt"))
    p = sb.run("--settings", s, "-c", 'echo \'{"mcpServers": {"evil": {}}}\' > .mcp.json')
    assert p.returncode == 1 and "Read-only file system" in p.stderr, p.stderr
    with open(sb.path("home/ws/.mcp.json")) as f:
        assert f.read() == '{"mcpServers": {}}\n'
    p = sb.run("--settings", s, "-c", "cat ~/.ssh/id_ed25519")
    assert p.returncode == 1 and "Permission denied" in p.stderr, p.stderr
    assert "PRIVATE KEY" not in p.stdout


def test_agent_shell_documented_differences(sb):
    s = agent_settings(sb)
    p = sb.run("--settings", s, "--", "bash", "-c", "arr=(a b); [[ ${arr[1]} == b ]] && echo bash")
    assert (p.returncode, p.stdout) == (0, "bash\n"), p.stderr
    p = sb.run("--settings", s, "-c", "echo one", "two")
    assert p.returncode == 125
    assert p.stderr == ('cordon: -c takes the whole command as one string; unexpected '
                        'argument "two"\n')
    p = sb.run("--settings", s, "--no-such-option", "-c", "echo x")
    assert p.returncode == 125 and p.stdout == ""


def test_agent_shell_wrapper(sb):
    s = agent_settings(sb)
    wrapper = sb.write("bin/cordon-shell", recipe_block("agent-shell.md", "cordon-shell"), 0o755)
    env = path_env(sb, {"CORDON_SETTINGS": s})
    for args in (["-lc"], ["-l", "-c"], ["-c"]):
        argv = sb.argv([])[:-1] + [wrapper] + args + ["echo via-wrapper; echo $0; touch w.txt"]
        p = subprocess.run(argv, cwd=sb.ws, env=env, capture_output=True, text=True, timeout=60)
        no_sanitizer_reports(p.stderr)
        assert (p.returncode, p.stdout, p.stderr) == (0, "via-wrapper\n/bin/bash\n", ""), args
    assert os.path.exists(os.path.join(sb.ws, "w.txt"))
    argv = sb.argv([])[:-1] + [wrapper, "-c", "cat ~/.ssh/id_ed25519"]
    p = subprocess.run(argv, cwd=sb.ws, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Permission denied" in p.stderr
    argv = sb.argv([])[:-1] + [wrapper, "-i"]
    p = subprocess.run(argv, cwd=sb.ws, env=env, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr) == (125, "cordon-shell: usage: cordon-shell [-l] -c STRING\n")


# ---------------------------------------------------------------------------
# 3. a CI step with only the package registry

REGISTRY = r'''
import http.server, os, sys
root = sys.argv[1]
log = os.path.join(root, "access.log")

class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=os.path.join(root, "www"), **k)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.command, self.path))

srv = http.server.ThreadingHTTPServer(("0.0.0.0", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
'''

WHEEL = "tinypkg-1.0-py3-none-any.whl"


def make_wheel():
    files = {
        "tinypkg/__init__.py": b"VERSION = '1.0'\n",
        "tinypkg-1.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: cordon-test\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
    }
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (name, digest, len(data))
    record += "tinypkg-1.0.dist-info/RECORD,,\n"
    files["tinypkg-1.0.dist-info/RECORD"] = record.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


class Registry:
    def __init__(self, lab):
        self.root = tempfile.mkdtemp(prefix="cordon-registry-")
        os.chmod(self.root, 0o755)
        wheel = make_wheel()
        pkgs = os.path.join(self.root, "www", "packages")
        os.makedirs(pkgs)
        with open(os.path.join(pkgs, WHEEL), "wb") as f:
            f.write(wheel)
        idx = os.path.join(self.root, "www", "simple", "tinypkg")
        os.makedirs(idx)
        with open(os.path.join(idx, "index.html"), "w") as f:
            f.write('<!DOCTYPE html><html><body><a href="/packages/%s#sha256=%s">%s</a>'
                    '</body></html>\n' % (WHEEL, hashlib.sha256(wheel).hexdigest(), WHEEL))
        self.proc = subprocess.Popen(lab.argv([PY, "-c", REGISTRY, self.root]),
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.port = int(self.proc.stdout.readline())

    def log(self):
        try:
            with open(os.path.join(self.root, "access.log")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(egress_lab):
    r = Registry(egress_lab)
    yield r
    r.stop()


def test_ci_recipe_settings_are_accepted(sb):
    s = sb.write("home/ws/ci/cordon.json", recipe_block("ci-registry-only.md", "ci-settings"))
    p = sb.run("--settings", s, "--print-policy")
    assert p.returncode == 0, p.stderr
    net = json.loads(p.stdout)["network"]
    assert net["allowedDomains"] == ["pypi.org", "files.pythonhosted.org"]
    assert [r["allow"] for r in net["requestRules"]] == [["GET /**", "HEAD /**"]] * 2


CI_STEP = r'''set -e
pipopts="--no-cache-dir --disable-pip-version-check"
python3 -m pip download $pipopts --no-deps --index-url "http://$REG/simple/" \
  --trusted-host registry.test -d wheelhouse tinypkg
python3 -m pip install $pipopts --no-index --find-links wheelhouse --target vendor tinypkg
PYTHONPATH=vendor python3 -c 'import tinypkg; print("tinypkg", tinypkg.VERSION)'
echo "other: $(curl -s -o /dev/null -w '%{http_code} %header{x-proxy-error}' http://allowed.test/)"
echo "upload: $(curl -s -o /dev/null -w '%{http_code} %header{x-proxy-error}' -X POST \
  --data-binary @wheelhouse/tinypkg-1.0-py3-none-any.whl "http://$REG/upload/")"
'''


def test_ci_step_reaches_only_the_registry(sb, egress_lab, registry):
    reg = "registry.test:%d" % registry.port
    settings = sb.settings({
        "filesystem": {"allowWrite": ["."]},
        "network": {
            "allowedDomains": [reg],
            "requestRules": [{"host": reg, "allow": ["GET /**", "HEAD /**"]}],
            # The lab's names, instead of the host's DNS.
            "hosts": {"registry.test": PUBLIC4},
            "dnsServers": ["127.0.0.1:%d" % egress_lab.ports["dns"]],
        }}, name="ci.json")
    audit = sb.path("outside", "ci-audit.jsonl")
    before = len(registry.log())
    p = egress_lab.run(sb, "--settings", settings, "--audit", audit, "--", "/bin/sh", "-c",
                       CI_STEP, env={"REG": reg}, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.splitlines()
    assert "tinypkg 1.0" in out, p.stdout
    assert "other: 403 blocked-by-allowlist" in out, p.stdout
    assert "upload: 403 blocked-by-rule" in out, p.stdout
    assert os.path.isfile(os.path.join(sb.ws, "wheelhouse", WHEEL))
    assert os.path.isfile(os.path.join(sb.ws, "vendor", "tinypkg", "__init__.py"))
    seen = registry.log()[before:]
    assert "GET /simple/tinypkg/" in seen, seen
    assert "GET /packages/" + WHEEL in seen, seen
    assert not any(line.startswith("POST") for line in seen), seen
    with open(audit) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    denied = [r for r in recs if r["verdict"] == "deny"]
    assert any(r.get("host") == "allowed.test" for r in denied), denied
    assert any(r["event"] == "net.request" and r.get("method") == "POST" and
               r.get("host") == "registry.test" for r in denied), denied
    assert any(r["event"] == "net.request" and r["verdict"] == "allow" and
               r.get("path") == "/packages/" + WHEEL for r in recs), recs


# ---------------------------------------------------------------------------
# 4. moving ~/.srt-settings.json over

def srt_file(sb, drop_refused_key):
    d = json.loads(recipe_block("migrating-from-srt.md", "srt-settings"))
    if drop_refused_key:
        del d["enableWeakerNestedSandbox"]
    return sb.settings(d, name="home/.srt-settings.json")


def test_migrate_refusal_names_the_key(sb):
    path = srt_file(sb, False)
    p = sb.run("--print-policy")
    assert p.returncode == 125
    want = localise(sb, recipe_block("migrating-from-srt.md", "srt-refusal"))
    assert want.startswith("cordon: " + path + ": ")
    assert p.stderr == want and p.stdout == ""


def test_migrate_print_policy_is_as_documented(sb):
    srt_file(sb, True)
    p = sb.run("--print-policy")
    assert p.returncode == 0, p.stderr
    want = json.loads(localise(sb, recipe_block("migrating-from-srt.md", "print-policy")))
    assert json.loads(p.stdout) == want


def test_migrate_debug_names_ignored_keys_on_a_run(sb):
    path = srt_file(sb, True)
    p = sb.run("-d", "--", "true")
    assert p.returncode == 0, p.stderr
    assert "cordon: debug: %s: /ripgrep: ignored: srt plumbing; cordon does not use ripgrep\n" \
        % path in p.stderr


def test_migrate_debug_names_ignored_keys_with_print_policy(sb):
    srt_file(sb, True)
    p = sb.run("-d", "--print-policy")
    assert p.returncode == 0, p.stderr
    assert "/ripgrep: ignored" in p.stderr


def test_migrate_misspelt_key_is_refused(sb):
    d = json.loads(recipe_block("migrating-from-srt.md", "srt-settings"))
    del d["enableWeakerNestedSandbox"]
    del d["network"]["allowLocalBinding"]
    d["network"]["allowLocalbinding"] = True
    path = sb.settings(d, name="home/.srt-settings.json")
    p = sb.run("--print-policy")
    assert p.returncode == 125
    assert p.stderr.startswith("cordon: %s: /network/allowLocalbinding: " % path), p.stderr


def test_migrate_cordon_file_wins_over_srt_file(sb):
    srt_file(sb, True)
    sb.mkdir("home/.config/cordon")
    sb.settings({"filesystem": {"denyRead": ["~/only-cordon"]}},
                name="home/.config/cordon/settings.json")
    p = sb.run("--print-policy")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["filesystem"]["denyRead"] == [sb.home + "/only-cordon"]
