"""Shared fixtures for cordon's integration tests.

The tests drive the real `cordon` binary (CORDON_BIN; by default build/cordon,
which must then be newer than every source under src/) as root and as an
unprivileged user (uid/gid 65534 through setpriv). Everything a run needs is
copied into a world-traversable temporary directory, because CI's clone may
sit where that user cannot enter. Every test leaves nothing behind:
the temporary tree is removed at teardown, including files the sandbox wrote.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORDON_BIN = os.environ.get("CORDON_BIN", os.path.join(REPO, "build", "cordon"))


def _stale_default_binary():
    """Without CORDON_BIN the tests run build/cordon, whatever `./dev build`
    last left there: a run by hand after an edit would test old code and
    pass or fail for the wrong reason. Refuse a binary older than a source."""
    if "CORDON_BIN" in os.environ or not os.path.isfile(CORDON_BIN):
        return None
    built = os.path.getmtime(CORDON_BIN)
    for top, _, files in os.walk(os.path.join(REPO, "src")):
        for f in files:
            path = os.path.join(top, f)
            if f.endswith((".c", ".h")) and os.path.getmtime(path) > built:
                return path
    return None


_newer = _stale_default_binary()
if _newer:
    pytest.exit("%s is older than %s: run ./dev build, or set CORDON_BIN" % (CORDON_BIN, _newer),
                returncode=4)
NOBODY = 65534
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


def is_root():
    return os.geteuid() == 0


class Sandbox:
    """A temporary world: a copy of cordon, a home and a workspace owned by
    the user the test runs as."""

    def __init__(self, user):
        if not os.path.isfile(CORDON_BIN):
            raise FileNotFoundError("CORDON_BIN does not exist: " + CORDON_BIN)
        self.user = user
        self.uid = NOBODY if user == "user" else os.geteuid()
        self.gid = NOBODY if user == "user" else os.getegid()
        self.base = tempfile.mkdtemp(prefix="cordon-it-", dir="/tmp")
        os.chmod(self.base, 0o755)
        bindir = os.path.join(self.base, "bin")
        os.mkdir(bindir)
        os.chmod(bindir, 0o755)
        self.bin = os.path.join(bindir, "cordon")
        shutil.copy2(CORDON_BIN, self.bin)
        os.chmod(self.bin, 0o755)
        self.home = self.mkdir("home")
        self.ws = self.mkdir("home/ws")
        self.outside = self.mkdir("outside")

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    def own(self, p):
        if is_root():
            os.lchown(p, self.uid, self.gid)

    def mkdir(self, rel, mode=0o755):
        p = self.path(rel)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        self.own(p)
        return p

    def write(self, rel, content, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
        os.chmod(p, mode)
        self.own(p)
        return p

    def settings(self, obj, name="settings.json"):
        return self.write(name, json.dumps(obj) if not isinstance(obj, str) else obj)

    def env(self, extra=None):
        env = {
            "HOME": self.home,
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C",
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        if extra:
            env.update(extra)
        return env

    def argv_plain(self, cmd):
        """cmd as the test's user (no cordon)."""
        cmd = list(cmd)
        if self.user == "user":
            cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                   "--clear-groups", "--"] + cmd
        return cmd

    def argv(self, args):
        cmd = [self.bin] + list(args)
        if self.user == "user":
            cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                   "--clear-groups", "--"] + cmd
        return cmd

    def run(self, *args, cwd=None, env=None, input=None, timeout=60, check_sanitizers=True,
            keep_summary=False, **kw):
        """Run cordon. Its exit summary of what it blocked ("cordon: blocked
        ...", one line at the end of stderr) is moved from p.stderr to
        p.summary (None when there was none) unless keep_summary: most tests
        check the command's own stderr; tests/integration/test_violations.py
        checks the summary."""
        p = subprocess.run(self.argv(args), cwd=cwd or self.ws, env=self.env(env),
                           input=input, capture_output=True, text=True, timeout=timeout, **kw)
        if check_sanitizers:
            for m in SANITIZER_MARKERS:
                assert m not in p.stderr, "sanitizer report:\n" + p.stderr
        p.summary = None
        if not keep_summary and isinstance(p.stderr, str):
            lines = p.stderr.splitlines(True)
            if lines and lines[-1].startswith("cordon: blocked "):
                p.summary = lines[-1].rstrip("\n")
                p.stderr = "".join(lines[:-1])
        return p

    def sh(self, script, *opts, **kw):
        """Run a shell script inside cordon with the given cordon options."""
        return self.run(*opts, "--", "/bin/sh", "-c", script, **kw)

    def popen(self, *args, cwd=None, env=None, **kw):
        return subprocess.Popen(self.argv(args), cwd=cwd or self.ws, env=self.env(env),
                                **kw)

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


def user_params():
    if is_root():
        return ["root", "user"]
    return ["user-as-is"]


@pytest.fixture(params=user_params())
def sb(request):
    """A Sandbox for each user the suite runs as (root and uid 65534)."""
    s = Sandbox("user" if request.param == "user" else "root")
    yield s
    s.cleanup()


@pytest.fixture
def root_sb():
    if not is_root():
        pytest.skip("needs root")
    s = Sandbox("root")
    yield s
    s.cleanup()


def kill_tree(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass


@pytest.fixture(scope="session")
def egress_lab():
    """The egress tests' private network (egress_lab.py): HTTP, HTTPS, echo,
    DNS and ssh servers in a network namespace of the test's own, where the
    egress tests run cordon; started once, torn down at the end. Making the
    namespace needs root."""
    if not is_root():
        pytest.skip("the egress lab needs root to make its own network namespace")
    import egress_lab as lab_module
    lab = lab_module.Lab()
    yield lab
    lab.stop()
