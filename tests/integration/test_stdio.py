"""The caller's descriptors 0, 1 and 2 (src/sandbox/stdio.c). Reopening
/proc/self/fd/N reaches the file and the mount the descriptor holds, the
host's, not a name in the sandbox's view: a directory on stdin is the host's
tree beneath it (masks included), and a read-only stdin could be reopened for
writing where the view protects the file. Every redirection here is made by
the caller's own shell, as the caller (root and uid 65534), the way a user
types it.
"""
import os
import shutil
import subprocess

import pytest

from helpers import PY, as_caller
from workspace_util import git_init


def caller_sh(sb, script, *args, timeout=60):
    """/bin/sh -c SCRIPT as the caller, without cordon around it; the script
    finds cordon in $C and its arguments in $1..."""
    env = sb.env({"C": sb.bin})
    return subprocess.run(as_caller(sb, ["/bin/sh", "-c", script, "sh"] + list(args)),
                          cwd=sb.ws, env=env, capture_output=True, text=True,
                          timeout=timeout)


def ssh_key(sb):
    sb.mkdir("home/.ssh", mode=0o700)
    return sb.write("home/.ssh/id_ed25519", "PRIVATE-KEY\n", mode=0o600)


# ---------------------------------------------------------------------------
# refused: a directory or an O_PATH descriptor

@pytest.mark.parametrize("fd", [0, 1, 2])
def test_directory_on_a_standard_descriptor_is_refused(sb, fd):
    ssh_key(sb)
    # The control: the key is out of the view (~/.ssh is denied by the
    # default policy, and this home lies in the host's /tmp, private inside).
    p = caller_sh(sb, '"$C" -- cat "$HOME/.ssh/id_ed25519"')
    assert p.returncode == 1
    assert "PRIVATE-KEY" not in p.stdout
    # The attack: the home directory on fd N, read through /proc/self/fd/N.
    p = caller_sh(sb, '"$C" -- cat /proc/self/fd/%d/.ssh/id_ed25519 %d<"$HOME"' % (fd, fd))
    assert p.returncode == 125, p.stderr
    assert "PRIVATE-KEY" not in p.stdout + p.stderr
    if fd == 2:
        return  # the message went to the directory, that is, nowhere
    name = ["standard input", "standard output", "standard error"][fd]
    assert ("cordon: %s (fd %d) is a directory" % (name, fd)) in p.stderr
    assert "refusing to start" in p.stderr


def test_o_path_descriptor_on_stdin_is_refused(sb):
    ssh_key(sb)
    code = ("import os, sys\n"
            "fd = os.open(os.environ['HOME'] + '/.ssh', os.O_PATH)\n"
            "os.dup2(fd, 0)\n"
            "os.execv(sys.argv[1], [sys.argv[1], '--', 'cat', '/proc/self/fd/0/id_ed25519'])\n")
    p = subprocess.run(as_caller(sb, [PY, "-c", code, sb.bin]), cwd=sb.ws, env=sb.env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 125, p.stderr
    assert "PRIVATE-KEY" not in p.stdout
    assert "cordon: standard input (fd 0) is an O_PATH descriptor" in p.stderr


# ---------------------------------------------------------------------------
# a read-only file stays read-only

def test_protected_file_on_stdin_cannot_be_reopened_for_writing(sb):
    git_init(sb, sb.ws)
    cfg = os.path.join(sb.ws, ".git", "config")
    before = open(cfg).read()
    p = caller_sh(sb, '"$C" -- sh -c \'echo x >> /proc/self/fd/0; echo "rc=$?"\' < .git/config')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "rc=2\n"
    assert "cannot create /proc/self/fd/0: Read-only file system" in p.stderr
    assert open(cfg).read() == before
    # Nor through a write-only or read-write reopen from another language.
    code = ("import os\n"
            "for fl in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):\n"
            "    try:\n"
            "        os.open('/proc/self/fd/0', fl); print('OPENED')\n"
            "    except OSError as e:\n"
            "        print(e.strerror)\n")
    p = caller_sh(sb, '"$C" -- "$1" -c "$2" < .git/config', PY, code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["Read-only file system"] * 3
    assert open(cfg).read() == before


def test_read_only_stdin_in_a_write_root_reads_but_does_not_write(sb):
    """A plain file of the workspace, which the command could write by its
    name: through the descriptor it was given for reading it still only
    reads (the same file, nothing more)."""
    sb.write("home/ws/in.txt", "one\ntwo\n")
    p = caller_sh(sb, '"$C" -- sh -c \'cat /proc/self/fd/0; echo x >> /proc/self/fd/0; '
                  'echo "rc=$?"; cat\' < in.txt')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "one\ntwo\nrc=2\none\ntwo\n"
    assert "Read-only file system" in p.stderr
    assert open(sb.ws + "/in.txt").read() == "one\ntwo\n"


def test_denied_file_given_on_stdin_is_the_callers_choice(sb):
    """The caller may hand a denied file in explicitly: the command reads
    that file, and only it."""
    ssh_key(sb)
    sb.write("home/.ssh/other", "OTHER-KEY\n", mode=0o600)
    p = caller_sh(sb, '"$C" -- sh -c \'cat; cat /proc/self/fd/0; '
                  'echo x >> /proc/self/fd/0; cat "$HOME/.ssh/other"; true\' '
                  '< "$HOME/.ssh/id_ed25519"')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "PRIVATE-KEY\nPRIVATE-KEY\n"
    assert "Read-only file system" in p.stderr
    # the rest of ~/.ssh stays hidden (ENOENT here: the test's home is under
    # /tmp, which is private inside; EACCES where a denyRead mask is seen)
    assert "OTHER-KEY" not in p.stdout
    assert "cat: %s/.ssh/other: " % sb.home in p.stderr, p.stderr
    assert open(sb.home + "/.ssh/id_ed25519").read() == "PRIVATE-KEY\n"


# ---------------------------------------------------------------------------
# ordinary redirections keep working

def test_output_redirections_write_and_append(sb):
    p = caller_sh(sb, '"$C" -- sh -c "echo out; echo err >&2" > build.log 2>&1 && '
                  '"$C" -- sh -c "echo more" >> build.log && '
                  '"$C" -- sh -c "echo again >> /proc/self/fd/1" >> build.log && '
                  '"$C" -- sh -c "echo e2 >&2" 2>> build.log && cat build.log')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "out\nerr\nmore\nagain\ne2\n"


def test_output_file_outside_the_write_roots(sb):
    """The caller redirects to a file the sandbox cannot write by name: the
    command writes it through the descriptor it was given."""
    p = caller_sh(sb, '"$C" -- echo made > "$1" && cat "$1"', sb.outside + "/o.txt")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "made\n"


def test_input_from_pipes_dev_null_and_here_documents(sb):
    p = caller_sh(sb, 'printf "a\\nb\\n" | "$C" -- wc -l; "$C" -- cat < /dev/null; '
                  'echo "rc=$?"; "$C" -- cat <<EOF\nheredoc\nEOF\n'
                  '"$C" -- sh -c "echo piped" | cat')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "2\nrc=0\nheredoc\npiped\n"


def test_stdin_offset_is_shared_with_the_caller(sb):
    """The command's reads move the caller's offset, as they would on the
    caller's own descriptor: `{ cordon -- head -n1; cat; } < file`."""
    sb.write("home/ws/lines.txt", "1\n2\n3\n")
    p = caller_sh(sb, '{ "$C" -- head -n1; cat; } < lines.txt; '
                  '{ read first; "$C" -- head -n1; cat; } < lines.txt')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "1\n2\n3\n2\n3\n"


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1)")
def test_terminal_on_stdio(sb):
    """Under script(1), 0, 1 and 2 are a pty: still a terminal inside."""
    p = caller_sh(sb, 'script -qec "$C -- sh -c \'test -t 0 && test -t 1 && test -t 2 && '
                  'echo TTY-OK\'" /dev/null < /dev/null')
    assert p.returncode == 0, p.stdout + p.stderr
    assert "TTY-OK" in p.stdout
