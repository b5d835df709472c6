"""Exit status contract and pass-through of stdio (issue: foundation)."""


def test_exit_status_passes_through(sb):
    assert sb.sh("exit 0").returncode == 0
    assert sb.sh("exit 7").returncode == 7


def test_signal_death_is_128_plus_n(sb):
    assert sb.sh("kill -TERM $$").returncode == 128 + 15
    assert sb.sh("kill -KILL $$").returncode == 128 + 9


def test_not_found_127_and_not_executable_126(sb):
    p = sb.run("--", "no-such-command-xyz")
    assert p.returncode == 127
    assert "no-such-command-xyz: command not found" in p.stderr
    sb.write("home/ws/noexec.sh", "#!/bin/sh\necho hi\n", mode=0o644)
    p = sb.run("--", "./noexec.sh")
    assert p.returncode == 126
    assert "Permission denied" in p.stderr


def test_stdio_passes_through(sb):
    p = sb.run("--", "cat", input="hello from stdin\n")
    assert p.returncode == 0
    assert p.stdout == "hello from stdin\n"
    p = sb.sh("echo out; echo err >&2")
    assert p.stdout == "out\n" and p.stderr == "err\n"


def test_dash_c_runs_a_shell_string(sb):
    p = sb.run("-c", "echo $((6*7)) && exit 3")
    assert p.returncode == 3 and p.stdout == "42\n"
