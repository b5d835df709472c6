"""Resource limits (settings key `limits`, README "Settings"): each value is
a ceiling on what the command inherits. cordon lowers a limit to it and
never raises one (init has no CAP_SYS_RESOURCE on the host), so a value
above the inherited hard limit leaves that hard limit, and "unlimited"
leaves the inherited limits alone; neither stops the command from starting.
Every test runs as root and as uid 65534. The limits cordon's tests rely
on elsewhere (a fork bomb stopped at nproc, EMFILE at nofile) are in
tests/escape/test_escape.py and test_faults.py.
"""
import resource

import pytest

# `ulimit` flags of dash, and the resources they read
LIMITS = {"nofile": ("-n", resource.RLIMIT_NOFILE), "nproc": ("-p", resource.RLIMIT_NPROC),
          "fsize": ("-f", resource.RLIMIT_FSIZE), "cpu": ("-t", resource.RLIMIT_CPU),
          "as": ("-v", resource.RLIMIT_AS)}


def inside(sb, limits):
    """Hard and soft limits the command sees, as `ulimit` prints them."""
    s = sb.settings({"filesystem": {"allowWrite": [sb.ws]}, "limits": limits})
    script = "; ".join("ulimit -H %s; ulimit -S %s" % (LIMITS[k][0], LIMITS[k][0])
                       for k in sorted(LIMITS))
    p = sb.run("-s", s, "--", "/bin/sh", "-c", script)
    assert p.returncode == 0, p.stderr
    vals = p.stdout.split()
    return {k: (vals[2 * i], vals[2 * i + 1]) for i, k in enumerate(sorted(LIMITS))}


def shown(v, key):
    """An rlimit as dash's ulimit shows it: -f in blocks of 512 bytes, -v in
    KiB."""
    if v == resource.RLIM_INFINITY:
        return "unlimited"
    return str(v // {"fsize": 512, "as": 1024}.get(key, 1))


def hard(key):
    return resource.getrlimit(LIMITS[key][1])[1]


def test_unlimited_keeps_the_inherited_limits_and_the_command_runs(sb):
    got = inside(sb, {k: "unlimited" for k in LIMITS})
    for k in LIMITS:  # setpriv keeps the test's limits for uid 65534
        assert got[k][0] == shown(hard(k), k), (k, got[k])


def test_a_value_above_the_hard_limit_leaves_the_hard_limit(sb):
    if hard("nofile") == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit on descriptors here")
    got = inside(sb, {"nofile": hard("nofile") * 4})
    assert got["nofile"] == (str(hard("nofile")), str(hard("nofile")))


def test_a_lower_value_is_both_the_hard_and_the_soft_limit(sb):
    got = inside(sb, {"nofile": 200, "cpu": 77, "fsize": 64 * 1024 * 1024,
                      "as": 2 * 1024 * 1024 * 1024})
    assert got["nofile"] == ("200", "200")
    assert got["cpu"] == ("77", "77")
    assert got["fsize"] == ("131072", "131072")
    assert got["as"] == ("2097152", "2097152")
