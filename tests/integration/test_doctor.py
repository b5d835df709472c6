"""`cordon doctor` (issue 18), and what `cordon` itself does when the kernel
lacks a layer.

Faults are induced for real where a test can: a user namespace whose
user.max_user_namespaces is 0 (`unshare -U -r`), and kernel_faults.py, which
installs a seccomp filter of its own before exec so that the syscalls behind
one feature fail as on a kernel without it. The doctor must notice each with
its own probes, and `cordon` must either refuse to run (exit 125, pointing
at `cordon doctor`) or say on stderr which layer it runs without. The
test-only switches (CORDON_TEST_DOCTOR_FAULT, CORDON_TEST_DOCTOR_SYSCTL, test
builds only) cover what cannot be induced here: Landlock disabled at boot,
no pids controller, Ubuntu's AppArmor restriction.

Verdict lines and exit statuses are checked exactly. Every test runs as root
and as uid 65534 unless it says otherwise.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import SANITIZER_MARKERS
from helpers import PY, disable_layers

HERE = os.path.dirname(os.path.abspath(__file__))
FAULTS = os.path.join(HERE, "kernel_faults.py")

NAMES = ["user namespaces", "Landlock", "seccomp filter", "seccomp user notification",
         "nftables in a user namespace", "cgroup (pids)"]
IDS = ["userns", "landlock", "seccomp", "seccomp_notify", "nftables", "cgroup"]
UNUSED = set()


def version(sb):
    p = sb.run("--version")
    return p.stdout.split()[1]


def parse(out):
    """{check name: (verdict line, [indented lines])}, and the result line."""
    checks, cur, result = {}, None, None
    lines = out.splitlines()
    assert lines[0].startswith("cordon doctor: cordon "), out
    assert lines[1] == "", out
    for ln in lines[2:]:
        if ln.startswith("result: "):
            result = ln
            cur = None
        elif ln.startswith("    "):
            assert cur is not None, out
            checks[cur][1].append(ln[4:])
        elif ln:
            name = ln.split(": ", 1)[0]
            assert name in NAMES, (ln, out)
            checks[name] = (ln, [])
            cur = name
    assert list(checks) == NAMES, out
    assert out.endswith("\n") and result == lines[-1], out
    return checks, result


def expect_line(name, verdict, ver):
    suffix = " (not used by cordon %s yet)" % ver if name in UNUSED else ""
    return "%s: %s%s" % (name, verdict, suffix)


def expected_result(checks, ver):
    bad = []
    for name in NAMES:
        if name in UNUSED:
            continue
        verdict = checks[name][0].split(": ", 1)[1]
        if verdict != "OK":
            bad.append("%s %s" % (name, verdict))
    if not bad:
        return "result: OK: every layer cordon %s relies on works here (exit 0)" % ver, 0
    return "result: not OK: %s (exit 1)" % ", ".join(bad), 1


def doctor(sb, *args, wrap=None, env=None):
    """cordon doctor ARGS, optionally under `kernel_faults.py WRAP`."""
    if wrap:
        argv = [PY, FAULTS, wrap, "--"] + sb.argv(["doctor"] + list(args))
        p = subprocess.run(argv, cwd=sb.ws, env=sb.env(env), capture_output=True, text=True,
                           timeout=60)
        if p.returncode == 77:
            pytest.skip("kernel_faults.py does not know this architecture")
        no_sanitizer_reports(p.stderr)
        return p
    return sb.run("doctor", *args, env=env)


def no_sanitizer_reports(err):
    for m in SANITIZER_MARKERS:
        assert m not in err, "sanitizer report:\n" + err


def run_under(sb, fault, *args):
    argv = [PY, FAULTS, fault, "--"] + sb.argv(list(args))
    p = subprocess.run(argv, cwd=sb.ws, env=sb.env(), capture_output=True, text=True,
                       timeout=60)
    if p.returncode == 77:
        pytest.skip("kernel_faults.py does not know this architecture")
    no_sanitizer_reports(p.stderr)
    return p


def check_consistent(sb, p, ver):
    """Parse a text report, check the result line and exit status agree with
    the verdicts, and that no failing check lacks its meaning and fix."""
    checks, result = parse(p.stdout)
    want, rc = expected_result(checks, ver)
    assert result == want, p.stdout
    assert p.returncode == rc, p.stdout + p.stderr
    for name, (line, body) in checks.items():
        if not line.endswith(": OK") and "OK (not used" not in line:
            assert any(b.startswith("meaning: ") for b in body), (name, p.stdout)
            assert any(b.startswith("fix: ") for b in body), (name, p.stdout)
        else:
            assert not any(b.startswith(("meaning: ", "fix: ")) for b in body), p.stdout
    return checks


# ---------------------------------------------------------------------------
# this machine

def test_doctor_healthy_on_this_machine(sb):
    ver = version(sb)
    p = doctor(sb)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr == ""
    checks = check_consistent(sb, p, ver)
    for name in NAMES:
        assert checks[name][0] == expect_line(name, "OK", ver), p.stdout
    assert p.stdout.splitlines()[-1] == \
        "result: OK: every layer cordon %s relies on works here (exit 0)" % ver
    u = checks["user namespaces"][1]
    assert u[-1] == ("probe: created user, mount, pid, network, ipc, uts and cgroup namespaces, "
                     "wrote the id maps, mounted a tmpfs, brought up lo and created a nested "
                     "user namespace")
    assert re.fullmatch(r"ABI \d+; a test ruleset was enforced", checks["Landlock"][1][0])
    assert checks["seccomp filter"][1] == [
        "probe: a filter was installed with seccomp(2) and refused a syscall"]
    kernel = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    sync = ("available" if kernel >= (6, 6) else
            "not available; each observed write-intent syscall costs several times more "
            "(bench/run --only=writes)")
    assert checks["seccomp user notification"][1] == [
        "probe: a filter with a listener was installed and one notification answered",
        "synchronous wake-ups (Linux 6.6): " + sync]
    assert checks["nftables in a user namespace"][1] == [
        "probe: created an nftables table inside a new user and network namespace"]
    cg = checks["cgroup (pids)"][1]
    if sb.uid == 0:
        assert re.fullmatch(r"pids controller at \S+ \(v[12]\): a group was created, limited "
                            r"and removed", cg[-1]), cg
    else:
        assert cg[-1] == ("not needed: for a caller whose uid is not 0 the kernel enforces the "
                          "process limit (limits.nproc, default 4096) as RLIMIT_NPROC")


def test_doctor_json_on_this_machine(sb):
    ver = version(sb)
    p = doctor(sb, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(p.stdout)
    assert d["cordon"] == ver and d["ok"] is True and d["uid"] == sb.uid
    assert d["initial_user_namespace"] is True
    assert [c["id"] for c in d["checks"]] == IDS
    assert [c["name"] for c in d["checks"]] == NAMES
    for c in d["checks"]:
        assert c["verdict"] == "ok", c
        assert c["used"] is (c["name"] not in UNUSED)
        assert c["meaning"] is None and c["fix"] == [] and c["details"], c


def test_doctor_usage(sb):
    p = sb.run("doctor", "--bogus")
    assert p.returncode == 125
    assert p.stdout == ""
    assert p.stderr == 'cordon doctor: unknown argument "--bogus" (see cordon doctor --help)\n'
    p = sb.run("doctor", "--help")
    assert p.returncode == 0 and p.stdout.startswith("Usage: cordon doctor [--json]\n")
    # The main help names the subcommand; a command called doctor runs as
    # `cordon -- doctor`.
    assert "cordon doctor [--json]" in sb.run("--help").stdout
    p = sb.run("--", "doctor")
    assert p.returncode == 127, p.stderr


# ---------------------------------------------------------------------------
# user namespaces: a real limit of 0

UNSHARE_ZERO = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'


def in_zero_userns(sb, *args):
    """ARGS run by `unshare -U -r`, in a user namespace whose
    user.max_user_namespaces is 0 (written by its own root)."""
    inner = ["unshare", "-U", "-r", "--", "/bin/sh", "-c", UNSHARE_ZERO, "sh"] + list(args)
    argv = sb.argv([])[:-1] + inner
    # The placeholder registry must be a directory the caller owns as seen
    # from inside: /tmp/cordon-0 may belong to the host's root.
    run = sb.mkdir("run", 0o700)
    p = subprocess.run(argv, cwd=sb.ws, env=sb.env({"XDG_RUNTIME_DIR": run}),
                       capture_output=True, text=True, timeout=60)
    no_sanitizer_reports(p.stderr)
    return p


def test_doctor_reports_user_namespaces_missing_when_the_limit_is_zero(sb):
    ver = version(sb)
    p = in_zero_userns(sb, sb.bin, "doctor")
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout.splitlines()[0].endswith(" inside a user namespace"), p.stdout
    checks = check_consistent(sb, p, ver)
    line, body = checks["user namespaces"]
    assert line == "user namespaces: missing"
    assert body == [
        "user.max_user_namespaces = 0 (in the user namespace this process runs in)",
        "this process already runs inside a user namespace (a container?)",
        "probe: cannot create user, mount, pid, network, ipc, uts and cgroup namespaces: "
        "No space left on device",
        "cordon needs at least 2 user namespaces per run (the sandbox's and the nested one the "
        "command runs in)",
        "meaning: cordon cannot run any command: every run stops with exit status 125 before "
        "the command starts. The sandbox is built from user namespaces; there is no weaker "
        "fallback",
        "fix: sudo sysctl -w user.max_user_namespaces=15000",
        "fix: echo 'user.max_user_namespaces = 15000' | sudo tee "
        "/etc/sysctl.d/60-cordon-userns.conf   # keep it after a reboot",
        "fix: inside a container the limit of its user namespace is set by whoever started it: "
        "raise it there (the same sysctl, run in that namespace)",
    ], p.stdout
    for name in ("Landlock", "seccomp filter", "seccomp user notification"):
        assert checks[name][0] == expect_line(name, "OK", ver)
    assert checks["nftables in a user namespace"][0] == \
        expect_line("nftables in a user namespace", "missing", ver)
    assert checks["nftables in a user namespace"][1][0] == "not tested: needs user namespaces"
    assert p.stdout.splitlines()[-1].startswith("result: not OK: user namespaces missing")


def test_run_refuses_without_user_namespaces_and_points_to_doctor(sb):
    p = in_zero_userns(sb, sb.bin, "--", "/bin/sh", "-c", "echo COMMAND-RAN")
    assert p.returncode == 125, p.stdout + p.stderr
    assert "COMMAND-RAN" not in p.stdout
    assert p.stderr == ("cordon: cannot create the sandbox's namespaces (unprivileged user "
                        "namespaces may be disabled; run `cordon doctor`): No space left on "
                        "device\n")


def test_doctor_json_when_the_limit_is_zero(sb):
    p = in_zero_userns(sb, sb.bin, "doctor", "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    d = json.loads(p.stdout)
    assert d["ok"] is False and d["initial_user_namespace"] is False
    u = d["checks"][0]
    assert u["id"] == "userns" and u["verdict"] == "missing" and u["used"] is True
    assert u["fix"][0] == "sudo sysctl -w user.max_user_namespaces=15000"
    assert u["meaning"].startswith("cordon cannot run any command")


# ---------------------------------------------------------------------------
# faults induced with a seccomp filter (kernel_faults.py)

def test_no_landlock_doctor_and_run(sb):
    ver = version(sb)
    p = doctor(sb, wrap="landlock")
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1
    assert checks["Landlock"] == ("Landlock: missing", [
        "landlock_create_ruleset(LANDLOCK_CREATE_RULESET_VERSION): Function not implemented",
        "this kernel was built without Landlock (CONFIG_SECURITY_LANDLOCK) or is older than "
        "Linux 5.13",
        "meaning: cordon still runs, and says so on every run (\"Landlock is not available on "
        "this kernel; running without it\"): the filesystem boundary rests on the mount view "
        "alone, with no second envelope around writes",
        "fix: boot a kernel with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13 or later) and landlock "
        "in its lsm= list",
    ]), p.stdout
    for name in ("user namespaces", "seccomp filter", "seccomp user notification"):
        assert checks[name][0] == expect_line(name, "OK", ver)
    assert p.stdout.splitlines()[-1] == "result: not OK: Landlock missing (exit 1)"
    # cordon runs without Landlock, but never silently.
    r = run_under(sb, "landlock", "--", "/bin/sh", "-c", "echo COMMAND-RAN")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "COMMAND-RAN\n"
    assert r.stderr == ("cordon: warning: Landlock is not available on this kernel; running "
                        "without it (see cordon doctor)\n")


def test_no_seccomp_filter_doctor_and_run(sb):
    ver = version(sb)
    p = doctor(sb, wrap="seccomp")
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1
    assert checks["seccomp filter"] == ("seccomp filter: missing", [
        "probe: cannot install a filter: Function not implemented",
        "meaning: cordon cannot run any command: installing its syscall filter is mandatory, "
        "so every run stops with exit status 125 (\"installing the seccomp filter\")",
        "fix: boot a kernel with CONFIG_SECCOMP_FILTER=y; inside a container, make sure its "
        "own seccomp profile allows seccomp(2) and prctl(PR_SET_NO_NEW_PRIVS)",
    ]), p.stdout
    assert p.stdout.splitlines()[-1] == "result: not OK: seccomp filter missing, seccomp user notification degraded (exit 1)"
    r = run_under(sb, "seccomp", "--", "/bin/sh", "-c", "echo COMMAND-RAN")
    assert r.returncode == 125, r.stderr
    assert "COMMAND-RAN" not in r.stdout
    assert r.stderr == ("cordon: sandbox setup failed: installing the seccomp filter: Function "
                        "not implemented\n")


def test_no_seccomp_notify_degrades_recording_only(sb):
    ver = version(sb)
    p = doctor(sb, wrap="notify")
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1, p.stdout
    assert checks["seccomp user notification"] == (
        expect_line("seccomp user notification", "degraded", ver), [
            "probe: cannot query the notification sizes: Invalid argument",
            "meaning: cordon runs, and still refuses the same syscalls and writes, but cannot "
            "record them: no syscall.deny or fs.deny records and none in the exit summary "
            "(Linux 5.5 or later); a run with network.allowUnixSockets is refused, since the "
            "supervisor performs those connects (Linux 5.6)",
            "fix: boot Linux 5.9 or later with CONFIG_SECCOMP_FILTER=y",
        ]), p.stdout
    for name in ("user namespaces", "Landlock", "seccomp filter"):
        assert checks[name][0] == expect_line(name, "OK", ver)
    # The run goes on, says what it cannot record, and still refuses.
    r = run_under(sb, "notify", "--", "/bin/sh", "-c",
                  "echo COMMAND-RAN; unshare -U true 2>/dev/null || echo REFUSED")
    assert (r.returncode, r.stdout) == (0, "COMMAND-RAN\nREFUSED\n")
    assert r.stderr == ("cordon: warning: seccomp user notification is not available: refused "
                        "syscalls and writes are not recorded (see cordon doctor)\n")


def test_user_namespaces_refused_doctor_and_run(sb):
    ver = version(sb)
    p = doctor(sb, wrap="userns")
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1
    line, body = checks["user namespaces"]
    assert line == "user namespaces: missing"
    assert "probe: cannot create user, mount, pid, network, ipc, uts and cgroup namespaces: " \
           "Operation not permitted" in body, p.stdout
    assert body[-1].startswith("fix: find what refuses"), p.stdout
    r = run_under(sb, "userns", "--", "/bin/sh", "-c", "echo COMMAND-RAN")
    assert r.returncode == 125
    assert r.stderr == ("cordon: cannot create the sandbox's namespaces (unprivileged user "
                        "namespaces may be disabled; run `cordon doctor`): Operation not "
                        "permitted\n")


def test_user_namespaces_without_capabilities_doctor(sb):
    """Ubuntu 24.04's AppArmor restriction: the namespaces are created but
    hold no capability, so the first mount fails."""
    ver = version(sb)
    p = doctor(sb, wrap="userns-caps")
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1
    line, body = checks["user namespaces"]
    assert line == "user namespaces: missing"
    assert "probe: cannot make the mount tree private: Operation not permitted" in body


def test_user_namespaces_without_capabilities_run_refuses(sb):
    r = run_under(sb, "userns-caps", "--", "/bin/sh", "-c", "echo COMMAND-RAN")
    assert r.returncode == 125
    assert "COMMAND-RAN" not in r.stdout
    assert r.stderr.startswith("cordon: sandbox setup failed: cannot make the mount namespace "
                               "private"), r.stderr


def test_user_namespaces_without_capabilities_run_points_to_doctor(sb):
    r = run_under(sb, "userns-caps", "--", "/bin/sh", "-c", "echo COMMAND-RAN")
    assert r.returncode == 125
    assert "cordon doctor" in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# test-only switches (test builds)

def need_switches(sb):
    if disable_layers(sb, "landlock") is None:
        pytest.skip("cordon was built without -Dtest_switches=true")


def test_switch_landlock_disabled_at_boot(sb):
    need_switches(sb)
    ver = version(sb)
    p = doctor(sb, env={"CORDON_TEST_DOCTOR_FAULT": "landlock"})
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1
    line, body = checks["Landlock"]
    assert line == "Landlock: missing"
    assert body[0] == ("landlock_create_ruleset(LANDLOCK_CREATE_RULESET_VERSION): Operation "
                       "not supported")
    assert body[1].startswith("the kernel has Landlock but it was not enabled at boot")
    assert body[-1].startswith("fix: add landlock to the lsm= kernel parameter, in front of "
                               "the modules already active: lsm=landlock,")
    assert p.stdout.splitlines()[-1] == "result: not OK: Landlock missing (exit 1)"
    d = json.loads(doctor(sb, "--json", env={"CORDON_TEST_DOCTOR_FAULT": "landlock"}).stdout)
    assert d["ok"] is False
    assert [c["verdict"] for c in d["checks"]] == ["ok", "missing", "ok", "ok", "ok", "ok"]


def test_switch_no_nftables_is_degraded(sb):
    need_switches(sb)
    ver = version(sb)
    p = doctor(sb, env={"CORDON_TEST_DOCTOR_FAULT": "nftables"})
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1, p.stdout
    assert checks["nftables in a user namespace"] == (
        expect_line("nftables in a user namespace", "degraded", ver), [
            "probe: cannot open a NETLINK_NETFILTER socket: Protocol not supported",
            "meaning: cordon runs, but without transparent capture and the sandbox's DNS "
            "(network.transparent): programs that ignore the proxy variables get no network "
            "at all, and every run says so (network.transparent false silences it)",
            "fix: boot a kernel with CONFIG_NF_TABLES and CONFIG_NF_TABLES_INET (or load them: "
            "sudo modprobe nf_tables)",
        ]), p.stdout
    assert p.stdout.splitlines()[-1] == \
        "result: not OK: nftables in a user namespace degraded (exit 1)"


def test_switch_no_pids_controller(sb):
    need_switches(sb)
    ver = version(sb)
    p = doctor(sb, env={"CORDON_TEST_DOCTOR_FAULT": "cgroup"})
    checks = check_consistent(sb, p, ver)
    line, body = checks["cgroup (pids)"]
    if sb.uid != 0:
        # RLIMIT_NPROC does the job for everyone but root.
        assert p.returncode == 0 and line == "cgroup (pids): OK"
        return
    assert p.returncode == 1
    assert line == "cgroup (pids): degraded"
    assert "no pids controller: neither /sys/fs/cgroup/pids (v1) nor pids in " \
           "/sys/fs/cgroup/cgroup.controllers (v2)" in body
    assert any(b.startswith("meaning: cordon runs, with a warning on every run, but for a "
                            "caller whose uid is 0 the process limit") for b in body)
    assert p.stdout.splitlines()[-1] == "result: not OK: cgroup (pids) degraded (exit 1)"


def fake_sysctls(sb, **values):
    for rel, v in values.items():
        sb.write("sysctl/" + rel.replace(".", "/"), "%s\n" % v)
    return sb.path("sysctl")


def test_switch_apparmor_restriction_fix(sb):
    need_switches(sb)
    ver = version(sb)
    d = fake_sysctls(sb, **{"kernel.apparmor_restrict_unprivileged_userns": 1,
                            "user.max_user_namespaces": 5000})
    p = doctor(sb, env={"CORDON_TEST_DOCTOR_FAULT": "userns", "CORDON_TEST_DOCTOR_SYSCTL": d})
    checks = check_consistent(sb, p, ver)
    assert p.returncode == 1
    line, body = checks["user namespaces"]
    assert line == "user namespaces: missing"
    assert body[:2] == ["user.max_user_namespaces = 5000",
                        "kernel.apparmor_restrict_unprivileged_userns = 1"]
    fixes = "\n".join(b for b in body if b.startswith(("fix: ", "     ")))
    if sb.uid == 0:
        # The restriction does not apply to root: no AppArmor advice.
        assert "apparmor" not in fixes.lower(), p.stdout
        return
    assert fixes == (
        "fix: printf '%%s\\n' 'abi <abi/4.0>,' 'include <tunables/global>' "
        "'profile cordon %s flags=(unconfined) {' '  userns,' "
        "'  include if exists <local/cordon>' '}' | sudo tee /etc/apparmor.d/cordon   "
        "# a profile that lets this cordon binary alone create user namespaces\n"
        "fix: sudo apparmor_parser -r /etc/apparmor.d/cordon\n"
        "fix: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0   "
        "# instead of the two lines above: lifts the restriction for every program") % sb.bin


def test_switch_debian_unprivileged_userns_clone_fix(sb):
    need_switches(sb)
    d = fake_sysctls(sb, **{"kernel.unprivileged_userns_clone": 0,
                            "user.max_user_namespaces": 5000})
    p = doctor(sb, env={"CORDON_TEST_DOCTOR_FAULT": "userns", "CORDON_TEST_DOCTOR_SYSCTL": d})
    assert p.returncode == 1
    checks, _ = parse(p.stdout)
    body = checks["user namespaces"][1]
    assert "kernel.unprivileged_userns_clone = 0" in body
    fixes = [b for b in body if b.startswith("fix: ")]
    if sb.uid == 0:
        assert not any("unprivileged_userns_clone" in f for f in fixes), p.stdout
    else:
        assert fixes == [
            "fix: sudo sysctl -w kernel.unprivileged_userns_clone=1",
            "fix: echo 'kernel.unprivileged_userns_clone = 1' | sudo tee "
            "/etc/sysctl.d/60-cordon-userns.conf   # keep it after a reboot"]


def test_release_builds_ignore_the_switches(sb):
    """Only meaningful for a build without test switches: the environment
    variables must change nothing there."""
    if disable_layers(sb, "landlock") is not None:
        pytest.skip("a test build honours the switches")
    p = doctor(sb, env={"CORDON_TEST_DOCTOR_FAULT": "landlock,userns,seccomp"})
    assert p.returncode == 0, p.stdout

