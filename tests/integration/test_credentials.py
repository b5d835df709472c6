"""Credentials never enter the sandbox (issue 9): what the command sees.

srt's `credentials` keys (srt-compat.md 1.3 and 3.10) and the ${env:..} and
${file:..} sources of network.injectHeaders, as the sandbox sees them: masked
variables hold sentinels ("fake_value_" and random [a-z0-9], the real
length, at least 24 bytes), denied ones and the sources of injected headers
are gone, masked files are read-only fakes bound over the real ones, JWTs
are fake JWTs (HS256, a random signature, far-future exp, or sentinels for
maskClaims), checked by decoding them inside the sandbox; no process, not
even the sandbox's init, shows a real value. Then the refusals: extract and
JWT mismatches (onExtractNoMatch error, warn, deny), ${env:..} and ${file:..}
that cannot be used, and the settings the cross-field checks refuse; every
message names the setting and never the value.

Every test runs as root and as uid 65534 (the `sb` fixture), and ends by
looking for each real value in every byte cordon printed or wrote (its
output, the audit file, the protect registry): nothing may be found. The
proxy side (where the real values go, and where they must not) is
test_credentials_proxy.py.
"""
import base64
import json
import itertools
import os
import re
import secrets
import subprocess

import pytest

from creds_lab import PY, SENTINEL_RE, real_value
from helpers import PROBE

FAR_FUTURE = 4102444800  # 2100-01-01: the exp of a fake JWT without maskClaims


# ---------------------------------------------------------------------------
# helpers

class View:
    """One test's runs: settings (interception on, one allowed name), cordon
    with --audit, and the leak check over everything cordon printed or
    wrote."""

    def __init__(self, sb):
        self.sb = sb
        self.n = 0
        self.reals = []
        self.outputs = []
        self.secret_dir = sb.mkdir("home/ws/secret")

    def real(self, prefix="sk-live-", n=40):
        v = real_value(prefix, n)
        self.reals.append(v)
        return v

    def file(self, name, content, mode=0o644):
        return self.sb.write("home/ws/secret/" + name, content, mode=mode)

    def settings(self, credentials=None, tls=True, **net):
        n = {"allowedDomains": ["api.test", "other.test"]}
        if tls:
            n["tlsTerminate"] = {}
        n.update(net)
        obj = {"network": n, "filesystem": {"allowWrite": [self.sb.ws]}}
        if credentials is not None:
            obj["credentials"] = credentials
        self.n += 1
        return self.sb.settings(obj, name="view-settings-%d.json" % self.n)

    def run(self, settings, *cmd, env=None, **kw):
        self.n += 1
        audit = self.sb.path("outside", "audit-%d.jsonl" % self.n)
        p = self.sb.run("-s", settings, "--audit", audit, "--", *cmd, env=env, **kw)
        self.outputs += [("stdout", p.stdout), ("stderr", p.stderr)]
        return p

    def py(self, settings, src, arg, env=None):
        p = self.run(settings, PY, "-c", src, json.dumps(arg), env=env)
        assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
        return json.loads(p.stdout.strip().splitlines()[-1])

    def check_no_leak(self, reals=None):
        """No real value in cordon's output, in any file under the test's
        tree but the credential files themselves, or in the protect
        registry of the run's user."""
        reals = reals if reals is not None else self.reals
        sources = [(w, t.encode("utf-8", "surrogateescape")) for w, t in self.outputs]
        for root, dirs, files in os.walk(self.sb.base):
            if root == self.secret_dir or root.startswith(self.secret_dir + os.sep):
                continue
            for f in files:
                p = os.path.join(root, f)
                if not os.path.islink(p) and os.path.isfile(p):
                    with open(p, "rb") as fh:
                        sources.append((p, fh.read()))
        for root, dirs, files in itertools.chain(os.walk("/tmp/cordon-%d" % self.sb.uid), os.walk(os.path.join(self.sb.home, ".cache", "cordon"))):
            for f in files:
                try:
                    with open(os.path.join(root, f), "rb") as fh:
                        sources.append((os.path.join(root, f), fh.read()))
                except OSError:
                    pass
        found = [(w, v[:8]) for w, d in sources for v in reals if v.encode() in d]
        assert not found, "a real value leaked: %r" % found


@pytest.fixture
def view(sb):
    return View(sb)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(payload, header=None):
    """A real-looking JWT (RS256 and a 64-byte random signature)."""
    h = header or {"alg": "RS256", "typ": "JWT", "kid": "key-1"}
    return "%s.%s.%s" % (b64url(json.dumps(h).encode()), b64url(json.dumps(payload).encode()),
                         b64url(secrets.token_bytes(64)))


def is_sentinel(v, length):
    return isinstance(v, str) and re.match(SENTINEL_RE, v) is not None and len(v) == length


# Inside the sandbox: the variables, `env`, /proc/self/environ, what /proc
# shows of every process (a child of the command included), the files, and
# each JWT decoded (header, payload, signature length).
VIEW_SRC = r'''
import base64, errno, json, os, subprocess, sys
arg = json.loads(sys.argv[1])
def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def jwt(tok):
    parts = tok.split(".")
    if len(parts) != 3:
        return {"parts": len(parts)}
    return {"parts": 3, "header": json.loads(b64d(parts[0])),
            "payload": json.loads(b64d(parts[1])), "sig_len": len(b64d(parts[2])),
            "sig": parts[2]}
def read(p):
    try:
        with open(p, "rb") as f:
            return {"ok": f.read().decode("latin-1")}
    except OSError as e:
        return {"errno": errno.errorcode.get(e.errno, str(e.errno))}
child = subprocess.Popen(["sleep", "30"])
out = {"env": {n: os.environ.get(n) for n in arg.get("env", [])},
       "env_cmd": subprocess.run(["env"], capture_output=True, text=True).stdout,
       "self_environ": read("/proc/self/environ"),
       "files": {p: read(p) for p in arg.get("files", [])},
       "jwt_env": {n: jwt(os.environ[n]) for n in arg.get("jwt_env", []) if n in os.environ},
       "jwt_files": {p: jwt(open(p).read().rstrip("\n")) for p in arg.get("jwt_files", [])}}
procs = {}
for d in sorted(os.listdir("/proc")):
    if d.isdigit():
        for what in ("environ", "cmdline"):
            r = read("/proc/%s/%s" % (d, what))
            procs[d + "/" + what] = r.get("ok", r.get("errno"))
out["procs"] = procs
out["child"] = str(child.pid)
child.kill()
child.wait()
print(json.dumps(out))
'''


# ---------------------------------------------------------------------------
# 1. the environment

def test_environment_holds_only_sentinels(view):
    """Masked variables are sentinels of the real length (24 bytes at
    least), in os.environ, in `env` and in /proc/self/environ alike; an
    extract replaces only group 1; decode jwt gives a fake JWT (HS256, a
    random 32-byte signature, exp 2100-01-01 and a sentinel sub) or, with
    maskClaims, the real payload with only those claims replaced; deny and
    the ${env:..} source of an injected header remove the variable; the
    sandbox's init (/proc/1) cannot be read; no readable process shows a
    real value."""
    api, short, pw = view.real(n=40), view.real("pw-", 9), view.real("db-", 16)
    gh = view.real("ghp_", 36)
    denied = view.real("denied-", 30)
    jwt_real = make_jwt({"sub": "user-1234567", "exp": 1700000000, "iss": "issuer.example"})
    claims_payload = {"sub": "user-7654321", "email": "alice@corp.example",
                      "iss": "issuer.example", "exp": 1700000000, "scope": "read write"}
    jwt_claims = make_jwt(claims_payload)
    view.reals += [jwt_real, jwt_claims, jwt_real.split(".")[2], jwt_claims.split(".")[2],
                   "user-1234567", "user-7654321", "alice@corp.example"]
    creds = {"envVars": [
        {"name": "API_KEY", "mode": "mask"},
        {"name": "SHORT_KEY", "mode": "mask"},
        {"name": "DB_URL", "mode": "mask", "extract": "://[^:/]+:([^@]+)@"},
        {"name": "JWT_TOKEN", "mode": "mask", "decode": "jwt"},
        {"name": "JWT_CLAIMS", "mode": "mask", "decode": "jwt", "maskClaims": ["sub", "email"]},
        {"name": "DENIED", "mode": "deny"},
        {"name": "NOT_SET", "mode": "mask"}]}
    inject = [{"host": "api.test", "header": "X-Gh", "value": "token ${env:GH_TOKEN}"}]
    s = view.settings(creds, injectHeaders=inject)
    env = {"API_KEY": api, "SHORT_KEY": short, "DB_URL": "postgres://bob:%s@db.internal:5432/x" % pw,
           "JWT_TOKEN": jwt_real, "JWT_CLAIMS": jwt_claims, "DENIED": denied, "GH_TOKEN": gh,
           "UNRELATED": "keep-me"}
    names = ["API_KEY", "SHORT_KEY", "DB_URL", "JWT_TOKEN", "JWT_CLAIMS", "DENIED", "GH_TOKEN",
             "NOT_SET", "UNRELATED"]
    out = view.py(s, VIEW_SRC, {"env": names, "jwt_env": ["JWT_TOKEN", "JWT_CLAIMS"]}, env=env)
    e = out["env"]
    assert is_sentinel(e["API_KEY"], 40) and is_sentinel(e["SHORT_KEY"], 24), e
    m = re.match(r"^postgres://bob:(.*)@db\.internal:5432/x$", e["DB_URL"])
    assert m and is_sentinel(m.group(1), 24), e["DB_URL"]
    assert e["DENIED"] is None and e["GH_TOKEN"] is None and e["NOT_SET"] is None
    assert e["UNRELATED"] == "keep-me"
    # the same values in `env` and /proc/self/environ, and nothing of the
    # removed variables
    env_lines = out["env_cmd"].splitlines()
    environ = out["self_environ"]["ok"].split("\0")
    for n in ("API_KEY", "SHORT_KEY", "DB_URL", "JWT_TOKEN", "JWT_CLAIMS", "UNRELATED"):
        assert "%s=%s" % (n, e[n]) in env_lines and "%s=%s" % (n, e[n]) in environ, n
    for n in ("DENIED", "GH_TOKEN", "NOT_SET"):
        assert not any(x.startswith(n + "=") for x in env_lines + environ), n

    # decode jwt without maskClaims: a fake JWT
    j = out["jwt_env"]["JWT_TOKEN"]
    assert j["parts"] == 3 and j["header"] == {"alg": "HS256", "typ": "JWT"}, j
    assert set(j["payload"]) == {"exp", "sub"} and j["payload"]["exp"] == FAR_FUTURE
    assert is_sentinel(j["payload"]["sub"], 24)
    assert j["sig_len"] == 32 and j["sig"] != jwt_real.split(".")[2]
    # with maskClaims: only sub and email replaced, the rest as it was
    j = out["jwt_env"]["JWT_CLAIMS"]
    assert j["header"] == {"alg": "HS256", "typ": "JWT"} and j["sig_len"] == 32, j
    assert set(j["payload"]) == set(claims_payload)
    assert is_sentinel(j["payload"]["sub"], 24) and is_sentinel(j["payload"]["email"], 24)
    assert j["payload"]["sub"] != j["payload"]["email"]
    assert {k: v for k, v in j["payload"].items() if k not in ("sub", "email")} == \
        {"iss": "issuer.example", "exp": 1700000000, "scope": "read write"}

    # /proc: init's environment is closed; every process that can be read
    # (the command, its child) shows only the fakes
    procs = out["procs"]
    assert procs["1/environ"] == "EACCES", procs
    child_env = procs[out["child"] + "/environ"].split("\0")
    assert "API_KEY=" + e["API_KEY"] in child_env
    readable = {k: v for k, v in procs.items() if v not in ("EACCES", "EPERM", "ENOENT", "ESRCH")}
    assert any(k.endswith("/environ") for k in readable)
    for k, v in readable.items():
        for r in view.reals:
            assert r not in v, (k, r[:8])
    view.check_no_leak()


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def descendants(pid):
    """Host pids of every process below pid."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def test_no_sandbox_process_holds_a_real_value_in_its_environment(view):
    """Seen from the host (root may read any /proc/PID/environ): while the
    command runs, neither the sandbox's init (cloned from the supervisor,
    which scrubs its copy of the environment) nor the command shows a real
    value in its environment or command line."""
    if os.geteuid() != 0:
        pytest.skip("reading another user's /proc/PID/environ needs root")
    api, denied, gh = view.real(n=40), view.real("denied-", 30), view.real("ghp_", 36)
    creds = {"envVars": [{"name": "API_KEY", "mode": "mask"}, {"name": "DENIED", "mode": "deny"}]}
    inject = [{"host": "api.test", "header": "X-Gh", "value": "token ${env:GH_TOKEN}"}]
    s = view.settings(creds, injectHeaders=inject)
    sb = view.sb
    p = sb.popen("-s", s, "--", "/bin/sh", "-c", "echo ready; read x; echo done",
                 env={"API_KEY": api, "DENIED": denied, "GH_TOKEN": gh},
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        # the sandbox's processes: init (the child of cordon in a pid
        # namespace of its own) and everything below it; the placeholder
        # watchdog, a child of cordon on the host side, is not in the
        # sandbox and holds only the caller's own environment
        host_ns = os.readlink("/proc/self/ns/pid")
        inits = [c for c in descendants(p.pid) if os.readlink("/proc/%d/ns/pid" % c) != host_ns
                 and c in children(p.pid)]
        assert len(inits) == 1, inits
        procs = inits + descendants(inits[0])
        assert len(procs) >= 2, procs  # init and the shell
        seen = {}
        for pid in procs:
            for what in ("environ", "cmdline"):
                try:
                    with open("/proc/%d/%s" % (pid, what), "rb") as f:
                        seen["%d/%s" % (pid, what)] = f.read()
                except OSError:
                    pass
        out, err = p.communicate("go\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    view.outputs += [("stdout", out), ("stderr", err)]
    assert p.returncode == 0 and out == "done\n", (p.returncode, out, err)
    assert sum(1 for k in seen if k.endswith("/environ")) >= 2, seen.keys()
    shell_env = [v for k, v in seen.items() if k.endswith("/environ") and b"API_KEY=fake_value_" in v]
    assert shell_env, "the shell's environment holds the sentinel"
    for k, v in seen.items():
        for r in view.reals:
            assert r.encode() not in v, (k, r[:8])
    view.check_no_leak()


# ---------------------------------------------------------------------------
# 2. files

def test_masked_files_hold_only_sentinels(view):
    """A whole file becomes a sentinel of its length with its final newline
    kept; an extract replaces only group 1 of each match (two matches, two
    sentinels), and a verbatim copy elsewhere only with maskDuplicates (the
    same sentinel); decode jwt makes a file a fake JWT, or masks only
    maskClaims. The fakes cannot be written (EROFS for an open that
    truncates, EACCES otherwise: mode 0444 on a read-only mount), chmod'ed (EROFS),
    removed or replaced (EBUSY: mount points); a denied file and the ${file:..} source
    of an injected header are empty mode-000 files (EACCES); a missing
    masked file is skipped."""
    whole = view.real("whole-", 33)
    y1, y2 = view.real("yaml-", 20), view.real("yaml2-", 28)
    dup = view.real("dup-", 30)
    hdr = view.real("hdr-", 26)
    denied = view.real("denied-", 26)
    jwt_real = make_jwt({"sub": "file-user-1", "exp": 1700000000})
    jwt_claims = make_jwt({"sub": "file-user-2", "email": "bob@corp.example", "aud": "api"})
    view.reals += [jwt_real, jwt_claims, jwt_real.split(".")[2], jwt_claims.split(".")[2],
                   "file-user-1", "file-user-2", "bob@corp.example"]
    f_whole = view.file("token.txt", whole + "\n")
    f_yaml = view.file("creds.yml", "user: alice\ntoken: %s\nother: 1\ntoken: %s\n" % (y1, y2))
    f_nodup = view.file("nodup.cfg", "key=%s\nbackup %s\n" % (dup, dup))
    f_dup = view.file("dup.cfg", "key=%s\nbackup %s\n" % (dup, dup))
    f_jwt = view.file("id.jwt", jwt_real + "\n")
    f_claims = view.file("claims.jwt", jwt_claims)
    f_denied = view.file("denied.txt", denied + "\n")
    f_hdr = view.file("hdr.txt", hdr + "\n")
    f_missing = view.sb.path("home/ws/secret/missing.txt")
    creds = {"files": [
        {"path": f_whole, "mode": "mask"},
        {"path": f_yaml, "mode": "mask", "extract": "token: (\\S+)"},
        {"path": f_nodup, "mode": "mask", "extract": "key=(\\S+)"},
        {"path": f_dup, "mode": "mask", "extract": "key=(\\S+)", "maskDuplicates": True},
        {"path": f_jwt, "mode": "mask", "decode": "jwt"},
        {"path": f_claims, "mode": "mask", "decode": "jwt", "maskClaims": ["email"]},
        {"path": f_denied, "mode": "deny"},
        {"path": f_missing, "mode": "mask"}]}
    inject = [{"host": "api.test", "header": "X-Key", "value": "${file:%s}" % f_hdr}]
    s = view.settings(creds, injectHeaders=inject)
    paths = [f_whole, f_yaml, f_nodup, f_dup, f_jwt, f_claims, f_denied, f_hdr, f_missing]
    out = view.py(s, VIEW_SRC, {"files": paths, "jwt_files": [f_jwt, f_claims]})
    got = out["files"]

    t = got[f_whole]["ok"]
    assert t.endswith("\n") and is_sentinel(t[:-1], 33), t
    m = re.match(r"^user: alice\ntoken: (\S+)\nother: 1\ntoken: (\S+)\n$", got[f_yaml]["ok"])
    assert m and is_sentinel(m.group(1), 24) and is_sentinel(m.group(2), 28), got[f_yaml]
    assert m.group(1) != m.group(2)
    # without maskDuplicates the copy outside the match stays real: that is
    # the documented meaning of the key, so the copy is not a leak here
    m = re.match(r"^key=(\S+)\nbackup (\S+)\n$", got[f_nodup]["ok"])
    assert m and is_sentinel(m.group(1), 30) and m.group(2) == dup, got[f_nodup]
    m = re.match(r"^key=(\S+)\nbackup (\S+)\n$", got[f_dup]["ok"])
    assert m and is_sentinel(m.group(1), 30) and m.group(2) == m.group(1), got[f_dup]
    assert got[f_jwt]["ok"].endswith("\n") and not got[f_claims]["ok"].endswith("\n")
    j = out["jwt_files"][f_jwt]
    assert j["header"] == {"alg": "HS256", "typ": "JWT"} and j["sig_len"] == 32, j
    assert j["payload"]["exp"] == FAR_FUTURE and is_sentinel(j["payload"]["sub"], 24)
    j = out["jwt_files"][f_claims]
    assert j["header"] == {"alg": "HS256", "typ": "JWT"} and j["sig_len"] == 32, j
    assert j["payload"]["sub"] == "file-user-2" and j["payload"]["aud"] == "api"
    assert is_sentinel(j["payload"]["email"], 24) and set(j["payload"]) == {"sub", "email", "aud"}
    view.reals.remove("file-user-2")  # not a masked claim: shown on purpose
    assert got[f_denied] == {"errno": "EACCES"} and got[f_hdr] == {"errno": "EACCES"}
    assert got[f_missing] == {"errno": "ENOENT"}

    # the fakes cannot be written, removed or replaced; the hidden files
    # are empty and mode 000
    ops = [["write", f_whole, "x"], ["append", f_yaml, "x"], ["truncate", f_whole],
           ["unlink", f_whole], ["rename", f_yaml, f_yaml + ".moved"],
           ["rename", view.sb.path("home/ws/secret/repl"), f_whole], ["chmod", f_whole, "666"],
           ["unlink", f_denied], ["read", f_whole]]
    view.file("repl", "replacement\n")
    p = view.run(s, PY, "-c", PROBE + "\nimport os\nfor p in %r: st = os.stat(p); "
                 "print(json.dumps([p, st.st_size, oct(st.st_mode & 0o7777)]))\n"
                 % ([f_denied, f_hdr],), json.dumps(ops))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    res = json.loads(lines[0])
    assert [r[0] for r in res] == ["EROFS", "EACCES", "EACCES", "EBUSY", "EBUSY", "EBUSY",
                                   "EROFS", "EBUSY", "OK"], res
    # a new run, a new sentinel (they are random per run)
    assert res[-1][1].endswith("\n") and is_sentinel(res[-1][1][:-1], 33) and res[-1][1] != t
    assert [json.loads(x)[1:] for x in lines[1:]] == [[0, "0o0"], [0, "0o0"]]
    # and the real files are untouched
    with open(f_whole) as f:
        assert f.read() == whole + "\n"
    view.reals.remove(dup)  # the unmasked copy in nodup.cfg, shown on purpose
    view.check_no_leak()


def test_masked_file_with_a_second_hard_link(view):
    """A credential file with a second hard link in the sandbox's view: the
    command must not read the real value through the other name (cordon
    may refuse to run, naming the setting, or hide it)."""
    v = view.real("linked-", 30)
    f = view.file("token.txt", v + "\n")
    os.link(f, view.sb.path("home/ws/secret/token.link"))
    s = view.settings({"files": [{"path": f, "mode": "mask"}]})
    p = view.run(s, "/bin/sh", "-c", "cat secret/token.txt secret/token.link")
    assert v not in p.stdout, "the real value, through the hard link"
    assert p.returncode in (0, 1, 125), p.stderr
    view.check_no_leak()


# ---------------------------------------------------------------------------
# 3. refusals: nothing runs, the setting is named, the value is not shown

NOMATCH = ("the extract expression matched nothing, so it cannot be masked (set "
           "onExtractNoMatch to \"deny\" to hide it, or \"warn\" to pass it unmasked)")
NOTJWT = ("the value is not a JWT, so it cannot be masked (set onExtractNoMatch to \"deny\" to "
          "hide it, or \"warn\" to pass it unmasked)")


@pytest.mark.parametrize("kind", ["env", "file"])
def test_on_extract_no_match(view, kind):
    """An extract that matches nothing: "error" (cordon's default) refuses
    to run (125, the message names credentials.envVars[0] (NAME) or
    credentials.files[0] (PATH), never the value); "warn" runs with the
    value unmasked and says so on stderr; "deny" hides it (variable
    removed, file empty and unreadable)."""
    v = view.real("nomatch-", 30)
    f = view.file("nomatch.txt", "password=%s\n" % v)
    marker = view.sb.path("home/ws/ran")

    def settings(mode):
        e = {"mode": "mask", "extract": "token: (\\S+)"}
        if mode:
            e["onExtractNoMatch"] = mode
        e.update({"name": "TOK"} if kind == "env" else {"path": f})
        return view.settings({"envVars" if kind == "env" else "files": [e]})

    label = "credentials.envVars[0] (TOK)" if kind == "env" else "credentials.files[0] (%s)" % f
    script = 'touch "%s"; printf "%%s|" "${TOK-unset}"; cat "%s" 2>&1' % (marker, f)
    env = {"TOK": v} if kind == "env" else {}
    for mode in (None, "error"):
        p = view.run(settings(mode), "/bin/sh", "-c", script, env=env)
        assert (p.returncode, p.stdout) == (125, ""), (p.returncode, p.stdout, p.stderr)
        assert p.stderr == "cordon: %s: %s\n" % (label, NOMATCH)
        assert not os.path.exists(marker)
    # warn: the value passes unmasked (the file is no credential in the env
    # case, so it shows in both)
    p = view.run(settings("warn"), "/bin/sh", "-c", script, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "%s|password=%s\n" % (v if kind == "env" else "unset", v)
    assert p.stderr == ("cordon: warning: %s: the extract expression matched nothing: passed "
                        "to the sandbox UNMASKED (onExtractNoMatch \"warn\")\n" % label)
    p = view.run(settings("deny"), "/bin/sh", "-c", script, env=env)
    assert p.returncode == (0 if kind == "env" else 1), p.stderr  # cat's status
    if kind == "env":
        assert p.stdout == "unset|password=%s\n" % v
    else:
        assert p.stdout == "unset|cat: %s: Permission denied\n" % f
    assert p.stderr == ""
    # "warn" shows the value to the command by design: only cordon's own
    # words must not hold it
    view.outputs = [(w, t) for w, t in view.outputs if w == "stderr"]
    view.check_no_leak()


def test_decode_jwt_of_a_value_that_is_not_a_jwt(view):
    """decode jwt on a value that is not a JWT is a no-match: refused by
    default (the message names the variable, not the value), hidden with
    onExtractNoMatch deny."""
    v = view.real("notajwt-", 30)
    s = view.settings({"envVars": [{"name": "TOK", "mode": "mask", "decode": "jwt"}]})
    p = view.run(s, "/bin/sh", "-c", "echo ran", env={"TOK": v})
    assert (p.returncode, p.stdout) == (125, "")
    assert p.stderr == "cordon: credentials.envVars[0] (TOK): %s\n" % NOTJWT
    s = view.settings({"envVars": [{"name": "TOK", "mode": "mask", "decode": "jwt",
                                    "onExtractNoMatch": "deny"}]})
    p = view.run(s, "/bin/sh", "-c", 'echo "${TOK-unset}"', env={"TOK": v})
    assert (p.returncode, p.stdout, p.stderr) == (0, "unset\n", "")
    view.check_no_leak()


def test_jwt_without_any_of_mask_claims_is_a_no_match(view):
    """A real JWT none of whose maskClaims exist has nothing to mask: that
    is a no-match like any other (default error, naming the setting; deny
    hides the variable), not an out-of-memory failure."""
    v = make_jwt({"sub": "someone-123", "exp": 1700000000})
    view.reals += [v, v.split(".")[2]]
    s = view.settings({"envVars": [{"name": "TOK", "mode": "mask", "decode": "jwt",
                                    "maskClaims": ["email"]}]})
    p = view.run(s, "/bin/sh", "-c", "echo ran", env={"TOK": v})
    assert (p.returncode, p.stdout) == (125, "")
    assert p.stderr.startswith("cordon: credentials.envVars[0] (TOK): "), p.stderr
    assert "out of memory" not in p.stderr
    s = view.settings({"envVars": [{"name": "TOK", "mode": "mask", "decode": "jwt",
                                    "maskClaims": ["email"], "onExtractNoMatch": "deny"}]})
    p = view.run(s, "/bin/sh", "-c", 'echo "${TOK-unset}"', env={"TOK": v})
    assert (p.returncode, p.stdout, p.stderr) == (0, "unset\n", "")
    view.check_no_leak()


def test_injected_header_sources_that_cannot_be_used(view):
    """${env:MISSING} refuses to run (125, the variable named); a ${file:..}
    whose content holds a line break inside, or a variable holding one,
    refuses to run without printing the value (it would split the request
    head); a missing ${file:..} is named. A single final newline of a file
    is not part of the value (the run goes ahead)."""
    v1, v2, v3 = view.real("l1-", 20), view.real("l2-", 20), view.real("ev-", 20)
    nl = view.file("nl.txt", "%s\n%s\n" % (v1, v2))
    ok = view.file("ok.txt", v3 + "\n")
    missing = view.sb.path("home/ws/secret/nope.txt")

    def run(value, env=None):
        s = view.settings(injectHeaders=[{"host": "api.test", "header": "X-K", "value": value}])
        return view.run(s, "/bin/sh", "-c", "echo ran", env=env)

    p = run("Bearer ${env:MISSING}")
    assert (p.returncode, p.stdout, p.stderr) == \
        (125, "", "cordon: network.injectHeaders[0]: ${env:MISSING} is not set\n")
    split = ("cordon: network.injectHeaders[0]: the value holds a line break or a control byte, "
             "which would split the request head\n")
    p = run("Bearer ${file:%s}" % nl)
    assert (p.returncode, p.stdout, p.stderr) == (125, "", split)
    p = run("Bearer ${env:TWO_LINES}", env={"TWO_LINES": "%s\r\nX-Evil: %s" % (v1, v2)})
    assert (p.returncode, p.stdout, p.stderr) == (125, "", split)
    p = run("Bearer ${file:%s}" % missing)
    assert (p.returncode, p.stdout, p.stderr) == \
        (125, "", "cordon: network.injectHeaders[0]: ${file:%s}: no such file\n" % missing)
    p = run("Bearer ${file:%s} $$ ${env:EV}" % ok, env={"EV": v3})
    assert (p.returncode, p.stdout, p.stderr) == (0, "ran\n", "")
    view.check_no_leak()


def settings_cases():
    """(credentials, network extra, JSON pointer, message) of settings the
    checks refuse."""
    return [
        ({"envVars": [{"name": "A", "mode": "mask"}]}, {"tls": False}, "",
         "/credentials: masking needs network.tlsTerminate, or credentials.allowPlaintextInject "
         "for plain HTTP only (as in srt)"),
        ({"envVars": [{"name": "A", "mode": "mask", "injectHosts": ["evil.test"]}]}, {},
         "/credentials/envVars/0/injectHosts/0", "\"evil.test\" is not covered by "
         "network.allowedDomains"),
        ({"envVars": [{"name": "A", "mode": "mask", "injectHosts": []}]}, {},
         "/credentials/envVars/0/injectHosts", None),
        ({"envVars": [{"name": "A", "mode": "mask", "maskClaims": ["sub"]}]}, {},
         "/credentials/envVars/0", "maskClaims needs decode: \"jwt\""),
        ({"envVars": [{"name": "A", "mode": "deny", "extract": "(x)"}]}, {},
         "/credentials/envVars/0", "mode \"deny\" takes no extract, decode, maskDuplicates or "
         "injectHosts"),
        ({"envVars": [{"name": "1A", "mode": "mask"}]}, {}, "/credentials/envVars/0/name",
         "\"1A\" is not a POSIX variable name"),
        ({"envVars": [{"name": "A", "mode": "mask", "hosts": ["api.test"]}]}, {},
         "/credentials/envVars/0/hosts", None),
        ({"files": [{"path": "/etc/", "mode": "mask"}]}, {}, "/credentials/files/0/path",
         "\"/etc/\": a credential file, not a directory (no trailing \"/\")"),
        ({"envVars": [{"name": "A", "mode": "mask", "injectHosts": ["api.test"]}]},
         {"tlsTerminate": {"excludeDomains": ["api.test"]}},
         "/credentials/envVars/0/injectHosts/0",
         "\"api.test\" is in tlsTerminate.excludeDomains, so nothing could be injected there"),
        (None, {"tls": False, "injectHeaders": [{"host": "api.test", "header": "X-K",
                                                  "value": "v"}]},
         "/network/injectHeaders/0/host", "injecting headers needs network.tlsTerminate, or "
         "network.allowPlaintextHeaderSet for plain HTTP only"),
        (None, {"injectHeaders": [{"host": "api.test", "header": "Host", "value": "v"}]},
         "/network/injectHeaders/0/header",
         "\"Host\" frames or routes the request and cannot be injected"),
        (None, {"injectHeaders": [{"host": "api.test", "header": "X-K", "value": "${HOME}"}]},
         "/network/injectHeaders/0/value", None),
        (None, {"injectHeaders": [{"host": "api.test", "header": "X-K", "value": "$5"}]},
         "/network/injectHeaders/0/value", "a \"$\" must start ${env:NAME} or ${file:PATH} "
         "(write \"$$\" for a literal \"$\")"),
    ]


@pytest.mark.parametrize("case", range(len(settings_cases())))
def test_settings_the_checks_refuse(view, case):
    creds, net, ptr, msg = settings_cases()[case]
    tls = net.pop("tls", True)
    s = view.settings(creds, tls=tls, **net)
    p = view.run(s, "/bin/sh", "-c", "echo ran", env={"A": "value-of-a"})
    assert (p.returncode, p.stdout) == (125, ""), (p.returncode, p.stdout, p.stderr)
    want = "cordon: %s: %s" % (s, ptr + ": " if ptr else "")
    assert p.stderr.startswith(want), (p.stderr, want)
    if msg is not None:
        assert p.stderr == want + msg + "\n"
    assert "value-of-a" not in p.stderr
