"""Fixtures for the escape suite.

The Sandbox harness is the integration suite's own (tests/integration/
conftest.py), loaded here under another module name rather than copied, so
both suites drive cordon the same way: a world-traversable temporary tree, the
`sb` fixture parametrized over root and uid 65534 (setpriv), sanitizer checks
on every run.

On top of it: the static escape-probe (built next to CORDON_BIN, in
<build>/tests/escape/escape-probe) copied into the sandbox's bin dir, which
the probe run makes visible inside with --allow-read (the sandbox has a
private /tmp), and a guard that no process started for a test outlives it.
"""
import importlib.util
import os
import signal
import subprocess
import time

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_IT_CONFTEST = os.path.join(os.path.dirname(_HERE), "integration", "conftest.py")

_spec = importlib.util.spec_from_file_location("cordon_integration_conftest", _IT_CONFTEST)
_it = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_it)

Sandbox = _it.Sandbox
is_root = _it.is_root
user_params = _it.user_params
CORDON_BIN = _it.CORDON_BIN
NOBODY = _it.NOBODY
SANITIZER_MARKERS = _it.SANITIZER_MARKERS
sb = _it.sb            # fixture: a Sandbox per user (root, uid 65534)
root_sb = _it.root_sb  # fixture: root only

PROBE_BIN = os.path.join(os.path.dirname(os.path.abspath(CORDON_BIN)), "tests", "escape",
                         "escape-probe")
PY = "/usr/bin/python3"


def procs_mentioning(marker):
    """Host pids whose command line mentions marker (a sandbox's base dir)."""
    found = []
    m = marker.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if m in f.read():
                    found.append(int(d))
        except OSError:
            pass
    return found


def check_sanitizers(stderr):
    for m in SANITIZER_MARKERS:
        assert m not in stderr, "sanitizer report:\n" + stderr


class Probe:
    """The escape-probe inside one Sandbox: `run(CLASS, ARGS, off=(...))`
    builds `cordon --allow-read BIN [-s S] [--test-disable-layer=L] -- probe
    CLASS ARGS` (through setpriv for uid 65534)."""

    check_sanitizers = staticmethod(check_sanitizers)

    def __init__(self, sb, path):
        self.sb = sb
        self.path = path
        self.bindir = os.path.dirname(path)

    def cordon_args(self, args, off=(), opts=(), exe=None):
        o = ["--allow-read", self.bindir] + list(opts)
        if off:
            o.append("--test-disable-layer=" + ",".join(off))
        return o + ["--", exe or self.path] + list(args)

    def argv(self, args, off=(), opts=(), exe=None):
        return self.sb.argv(self.cordon_args(args, off, opts, exe))

    def run(self, args, off=(), opts=(), exe=None, env=None, timeout=30, **kw):
        p = subprocess.run(self.argv(args, off, opts, exe), cwd=self.sb.ws,
                           env=self.sb.env(env), capture_output=True, text=True,
                           timeout=timeout, **kw)
        check_sanitizers(p.stderr)
        return p


@pytest.fixture(scope="session")
def probe_bin():
    if not os.access(PROBE_BIN, os.X_OK):
        pytest.fail("escape-probe is not built: %s (ninja -C %s)"
                    % (PROBE_BIN, os.path.dirname(os.path.abspath(CORDON_BIN))))
    return PROBE_BIN


@pytest.fixture(scope="session")
def layer_switches():
    """True when CORDON_BIN carries --test-disable-layer (meson
    -Dtest_switches=true); rows that switch a layer off need it."""
    p = subprocess.run([CORDON_BIN, "--test-disable-layer=seccomp", "--print-policy"],
                       capture_output=True, text=True, timeout=30,
                       env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin",
                            "XDG_CONFIG_HOME": "/nonexistent"})
    return p.returncode == 0


@pytest.fixture
def probe(sb, probe_bin):
    """The probe copied into sb's world-traversable bin dir. At teardown, no
    process mentioning this sandbox's tree may remain (a forked child, a
    sandbox that did not die with its supervisor)."""
    path = os.path.join(sb.base, "bin", "escape-probe")
    with open(probe_bin, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    os.chmod(path, 0o755)
    yield Probe(sb, path)
    left = []
    for _ in range(50):  # a killed sandbox's processes take a moment to go
        left = procs_mentioning(sb.base)
        if not left:
            break
        time.sleep(0.02)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, "processes left behind: %r" % left
