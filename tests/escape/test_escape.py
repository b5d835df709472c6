"""cordon's escape suite: each known escape class (shared/reference/
escape-classes.md, #N below) attempted for real by tests/escape/probe.c from
inside the sandbox, as root and as uid 65534.

MATRIX is the specification. For each class it says which layers close it
and, for the configuration "all layers" and for each relevant layer switched
off alone (--test-disable-layer, test builds only), the exact RESULT line the
probe prints (or the signal that kills it) and cordon's exit status. A class
that is not marked single-layer must be closed by at least two layers: each
switchable one among them has a row with only that layer off, and that row is
still BLOCKED, with the errno of what remains. A class closed by one layer by
nature says so (`single`), with a row showing what that layer alone stops.
Rows with more than one layer off either show what still holds below them or
are controls that prove the probe really performs the attack (it succeeds
once every layer in the way is gone: TIOCSTI bytes arrive in the caller's
tty, the caller's key is read). Where the host can see the attempt (a
listener, a tty, a process), the test checks the host's side too.

Layers that cannot be switched off are named too: "pidns", "netns", "mount
view" (the read-only, masked view and the fresh /dev), "nested userns" (the
command never holds a capability in the namespaces that own its network, pid
and cgroup namespaces or its view), "kernel" (a sysctl or a missing config).

A class cordon fails to close keeps its row, with the result it should have,
as a strict xfail whose reason starts with "BUG:".
"""
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import termios
import tty
import select
import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

import pytest


PY = "/usr/bin/python3"
SWITCHABLE = ("seccomp", "landlock", "userns-limit", "setsid", "keyring", "close-fds", "env",
              "limits", "caps", "nnp", "dumpable")
SIGSYS_EXIT = 128 + signal.SIGSYS    # 159: seccomp's bad-arch action kills the process
SIGTERM_EXIT = 128 + signal.SIGTERM  # 143

# Result of a row: the RESULT line after "RESULT ", or "signal:SIGSYS" for a
# probe killed before it could print. A dict gives it per user ("root",
# "user").
Expect = Union[str, Dict[str, str]]


@dataclass
class Row:
    off: Tuple[str, ...]
    expect: Expect
    rc: Optional[int] = None       # cordon's exit status; default 0 (SIGSYS: 159)
    why: str = ""                  # which layer answers, in words
    bug: Optional[str] = None      # strict xfail: "BUG: ...", while cordon gives...
    observed: Optional[str] = None  # ...this result instead of `expect`


@dataclass
class Case:
    name: str
    args: Tuple[str, ...]           # CLASS ARGS; "{h.x}" are host resources (Host below)
    closed_by: Tuple[str, ...]
    rows: Tuple[Row, ...]
    single: Optional[str] = None    # why one layer is all there is
    exe: Optional[str] = None       # run this (formatted) instead of the probe
    opts: Tuple[str, ...] = ()      # extra cordon options (formatted)
    env: Dict[str, str] = field(default_factory=dict)
    pty: bool = False               # stdin = a pty slave that is cordon's controlling tty
    keyring: bool = False           # a key in a fresh session keyring of cordon's caller
    fds: bool = False               # pass open host fds to cordon
    reach: Optional[str] = None     # Host listener that must be reached iff OPEN
    root_only: bool = False


def R(off, expect, rc=None, why="", bug=None, observed=None):
    if isinstance(off, str):
        off = tuple(x for x in off.split(",") if x)
    assert (bug is None) == (observed is None)
    return Row(tuple(off), expect, rc, why, bug, observed)


class KnownBug(AssertionError):
    """A BUG row gave exactly the result it is known to give. Only this
    exception is the expected failure: anything else fails for real."""


# no_new_privs cannot be switched off alone: once capabilities are dropped,
# landlock_restrict_self() and seccomp(2) both require it, and cordon fails
# closed; the setuid rows switch all three off to see what remains.
NNP_ALONE = "fail:cordon: sandbox setup failed: applying Landlock: Operation not permitted"
NNP_LANDLOCK = ("fail:cordon: sandbox setup failed: installing the seccomp filter: "
                "Permission denied")
NNP_ALONE_WHY = ("cordon fails closed: Landlock and seccomp need no_new_privs without "
                 "CAP_SYS_ADMIN")

KEY_DESC = "cordon-escape-" + uuid.uuid4().hex[:12]
KEY_PAYLOAD = b"SECRET-KEY-PAYLOAD"

MATRIX = [
    # ---- terminals (#1-#3): through a real pty that is cordon's controlling tty
    Case("tiocsti", ("tiocsti", "ab"), ("seccomp", "setsid"), pty=True, rows=(
        R("", "BLOCKED EPERM", why="seccomp: ioctl TIOCSTI"),
        R("seccomp", "BLOCKED EPERM", why="setsid: the command has no controlling tty"),
        R("setsid", "BLOCKED EPERM", why="seccomp"),
        R("seccomp,setsid", "OPEN injected", why="control: the bytes reach the caller's tty"),
    )),
    Case("tiocsti-high", ("tiocsti-high", "ab"), ("seccomp", "setsid"), pty=True, rows=(
        R("", "BLOCKED EPERM", why="seccomp compares the low 32 bits (CVE-2019-10063)"),
        R("seccomp", "BLOCKED EPERM", why="setsid"),
        R("setsid", "BLOCKED EPERM", why="seccomp, masked compare"),
        R("seccomp,setsid", "OPEN injected", why="control: the kernel truncates to 32 bits"),
    )),
    Case("tioclinux", ("tioclinux",), ("seccomp", "mount view"), pty=True, rows=(
        R("", "BLOCKED EPERM", why="seccomp: ioctl TIOCLINUX"),
        R("seccomp", "BLOCKED ENOTTY", why="fd 0 is a pty, not a VT"),
    )),
    Case("tiocsetd", ("tiocsetd",), ("seccomp",), pty=True,
         single="the kernel asks neither a privilege nor a controlling tty for TIOCSETD",
         rows=(
        R("", "BLOCKED EPERM", why="seccomp: ioctl TIOCSETD"),
        R("seccomp", "OPEN ldisc=27", why="control: N_NULL stays on the caller's tty"),
    )),
    Case("tiocexcl", ("tiocexcl",), ("seccomp",), pty=True,
         single="the kernel asks neither a privilege nor a controlling tty for TIOCEXCL",
         rows=(
        R("", "BLOCKED EPERM", why="seccomp: ioctl TIOCEXCL"),
        R("seccomp", "OPEN exclusive", why="control: the caller's tty cannot be opened again"),
    )),
    Case("tiocsetd-high", ("tiocsetd-high",), ("seccomp",), pty=True,
         single="the kernel asks neither a privilege nor a controlling tty for TIOCSETD",
         rows=(
        R("", "BLOCKED EPERM", why="seccomp compares the low 32 bits"),
        R("seccomp", "OPEN ldisc=27", why="control: the kernel truncates to 32 bits"),
    )),
    Case("tiocexcl-high", ("tiocexcl-high",), ("seccomp",), pty=True,
         single="the kernel asks neither a privilege nor a controlling tty for TIOCEXCL",
         rows=(
        R("", "BLOCKED EPERM", why="seccomp compares the low 32 bits"),
        R("seccomp", "OPEN exclusive", why="control: the kernel truncates to 32 bits"),
    )),
    Case("tioclinux-vt", ("tioclinux", "/dev/tty0"), ("seccomp", "mount view"), rows=(
        R("", "BLOCKED ENOENT open", why="fresh /dev: no VT (the host has /dev/tty0)"),
        R("seccomp", "BLOCKED ENOENT open", why="fresh /dev"),
    )),

    # ---- io_uring (#6)
    Case("io_uring-connect-lo", ("io_uring-connect", "127.0.0.1", "{h.tcp_port}"),
         ("seccomp", "netns"), reach="tcp", rows=(
        R("", "BLOCKED EPERM io_uring_setup", why="seccomp"),
        R("seccomp", "BLOCKED ECONNREFUSED connect", why="netns: the sandbox's own lo"),
        R("landlock", "BLOCKED EPERM io_uring_setup", why="seccomp"),
    )),
    Case("io_uring-connect-host", ("io_uring-connect", "{h.host_ip}", "{h.tcp_port}"),
         ("seccomp", "netns"), reach="tcp", rows=(
        R("", "BLOCKED EPERM io_uring_setup", why="seccomp"),
        R("seccomp", "BLOCKED EHOSTUNREACH connect",
          why="netns: an unreachable route (transparent capture routes only allowed addresses)"),
        R("landlock", "BLOCKED EPERM io_uring_setup", why="seccomp"),
    )),
    Case("io_uring-openat", ("io_uring-openat", "secret.txt"), ("seccomp", "mount view"),
         opts=("--deny-read", "{h.secret}"), rows=(
        R("", "BLOCKED EPERM io_uring_setup", why="seccomp"),
        R("seccomp", "BLOCKED EACCES openat", why="mount view: a mode-000 file"),
        R("landlock", "BLOCKED EPERM io_uring_setup", why="seccomp"),
    )),
    Case("io_uring-openat-allowed", ("io_uring-openat", "{h.readable}"), ("seccomp",),
         single="control for io_uring-openat: a file the policy allows is read through "
                "the ring once seccomp is off, so the EACCES above is the mount view's",
         opts=("--deny-read", "{h.secret}"), rows=(
        R("", "BLOCKED EPERM io_uring_setup"),
        R("seccomp", "OPEN read"),
    )),

    # ---- ptrace and process_vm (#7)
    Case("ptrace-sibling", ("ptrace-sibling",), ("seccomp",),
         single="a same-uid child in the same Landlock domain may be traced (no Yama "
                "here): only seccomp refuses ptrace", rows=(
        R("", "BLOCKED EPERM attach seize=EPERM"),
        R("seccomp", "OPEN attached"),
    )),
    Case("process-vm-read", ("process-vm-read",), ("seccomp",),
         single="as ptrace-sibling: process_vm_readv of one's own child", rows=(
        R("", "BLOCKED EPERM"),
        R("seccomp", "OPEN read 16 bytes"),
    )),
    Case("ptrace-init", ("ptrace-init",),
         ("seccomp", "dumpable", "landlock", "nested userns"), rows=(
        R("", "BLOCKED EPERM attach seize=EPERM", why="seccomp"),
        R("seccomp", "BLOCKED EPERM attach seize=EPERM",
          why="init non-dumpable, outside the Landlock domain, in the parent userns"),
        R("dumpable", "BLOCKED EPERM attach seize=EPERM", why="seccomp"),
        R("landlock", "BLOCKED EPERM attach seize=EPERM", why="seccomp"),
        R("seccomp,dumpable", "BLOCKED EPERM attach seize=EPERM",
          why="Landlock, and no CAP_SYS_PTRACE over init's userns"),
        R("seccomp,landlock", "BLOCKED EPERM attach seize=EPERM",
          why="non-dumpable, and no CAP_SYS_PTRACE over init's userns"),
    )),
    Case("process-vm-init", ("process-vm-read", "1"),
         ("seccomp", "dumpable", "landlock", "nested userns"), rows=(
        R("", "BLOCKED EPERM", why="seccomp"),
        R("seccomp", "BLOCKED EPERM", why="ptrace access check on init"),
        R("dumpable", "BLOCKED EPERM", why="seccomp"),
        R("landlock", "BLOCKED EPERM", why="seccomp"),
    )),

    # ---- keyrings (#8): the probe gets the id of a key in its caller's session
    Case("keyctl", ("keyctl-read", "@KEY@", "@SES@"), ("seccomp", "keyring"), keyring=True,
         rows=(
        R("", "BLOCKED EPERM read describe=EPERM session=EPERM", why="seccomp"),
        # The key's owner is the caller, whose uid the sandbox maps: "view"
        # (describe) is granted by the key's user bits, never "read".
        R("seccomp", "BLOCKED EACCES read describe=OK session=fresh",
          why="keyring: init's fresh session keyring; the key is no longer possessed"),
        R("keyring", "BLOCKED EPERM read describe=EPERM session=EPERM", why="seccomp"),
        R("seccomp,keyring", "OPEN read describe=OK session=caller",
          why="control: the caller's session keyring and its key"),
    )),
    Case("proc-keys", ("proc-keys", KEY_DESC), ("mount view",), keyring=True,
         single="/proc/keys needs no syscall seccomp could refuse: the sandbox's /proc "
                "hides it (and /proc/key-users) under the mode-000 placeholder", rows=(
        R("", "BLOCKED EACCES open"),
    )),


    # ---- unix sockets (#13, #14)
    Case("abstract-connect", ("abstract-connect", "{h.abstract}"),
         ("seccomp", "netns", "landlock"), reach="abstract", rows=(
        R("", "BLOCKED EPERM socket", why="seccomp refuses AF_UNIX"),
        R("seccomp", "BLOCKED ECONNREFUSED connect",
          why="netns: another abstract namespace (Landlock's scope would follow)"),
        R("landlock", "BLOCKED EPERM socket", why="seccomp"),
    )),
    Case("unix-connect", ("unix-connect", "{h.unix_path}"), ("seccomp",), reach="unix",
         single="Landlock (ABI 7) does not govern connect() and a read-only mount does not "
                "either: seccomp is the only layer (it refuses AF_UNIX, or with "
                "allowUnixSockets hands every connect() to the supervisor, which "
                "performs it only for listed paths)", rows=(
        R("", "BLOCKED EPERM socket"),
        R("seccomp", "OPEN connected"),
        R("landlock", "BLOCKED EPERM socket"),
    )),
    Case("unix-dgram", ("unix-dgram", "{h.dgram_path}"), ("seccomp",), reach="dgram",
         single="as unix-connect: seccomp refuses datagram socketpairs (whose ends could "
                "sendto() any pathname socket); nothing else governs the send", rows=(
        R("", "BLOCKED EPERM socketpair"),
        R("seccomp", "OPEN sent"),
        R("landlock", "BLOCKED EPERM socketpair"),
    )),
    Case("unix-dgram-abstract", ("unix-dgram", "@{h.abstract_dgram}"),
         ("seccomp", "netns", "landlock"), reach="abstract_dgram", rows=(
        R("", "BLOCKED EPERM socketpair", why="seccomp refuses datagram socketpairs"),
        R("seccomp", "BLOCKED ECONNREFUSED sendto",
          why="netns: another abstract namespace (Landlock's scope would follow)"),
        R("landlock", "BLOCKED EPERM socketpair", why="seccomp"),
    )),

    # ---- network (#15-#18)
    Case("mptcp-lo", ("mptcp", "127.0.0.1", "{h.tcp_port}"), ("seccomp", "netns"),
         reach="tcp", rows=(
        R("", "BLOCKED EPERM socket", why="seccomp: IPPROTO_MPTCP"),
        R("seccomp", "BLOCKED ECONNREFUSED connect", why="netns: own lo"),
        R("landlock", "BLOCKED EPERM socket", why="seccomp"),
    )),
    Case("mptcp-host", ("mptcp", "{h.host_ip}", "{h.tcp_port}"), ("seccomp", "netns"),
         reach="tcp", rows=(
        R("", "BLOCKED EPERM socket", why="seccomp"),
        R("seccomp", "BLOCKED EHOSTUNREACH connect", why="netns"),
    )),
    Case("tcp-host", ("tcp", "{h.host_ip}", "{h.tcp_port}"), ("netns",), reach="tcp",
         single="TCP is allowed by seccomp and Landlock's TCP rules are not used: the "
                "empty netns is the network boundary", rows=(
        R("", "BLOCKED EHOSTUNREACH connect"),
        R("seccomp", "BLOCKED EHOSTUNREACH connect"),
        R("landlock", "BLOCKED EHOSTUNREACH connect"),
    )),
    Case("udp-host", ("udp", "{h.host_ip}", "{h.udp_port}"), ("netns",), reach="udp",
         single="#16: UDP is not filtered anywhere else", rows=(
        R("", "BLOCKED EHOSTUNREACH sendto"),
        R("seccomp", "BLOCKED EHOSTUNREACH sendto"),
    )),
    Case("vsock", ("vsock",), ("seccomp",),
         single="AF_VSOCK is not network-namespaced and this kernel has virtio-vsock "
                "built in: without seccomp the socket is created (the probe never "
                "connects: CID 2 is the hypervisor)", rows=(
        R("", "BLOCKED EPERM socket"),
        R("seccomp", "OPEN socket"),
    )),
    Case("raw", ("raw",), ("caps", "nested userns", "netns"), rows=(
        R("", "BLOCKED EPERM socket", why="no CAP_NET_RAW (seccomp allows AF_INET raw)"),
        R("seccomp", "BLOCKED EPERM socket", why="no CAP_NET_RAW"),
        R("caps", "BLOCKED EPERM socket",
          why="nested userns: no capability over the netns's owner"),
    )),
    Case("packet", ("packet",), ("seccomp", "caps", "nested userns"), rows=(
        R("", "BLOCKED EPERM socket", why="seccomp: AF_PACKET"),
        R("seccomp", "BLOCKED EPERM socket", why="no CAP_NET_RAW"),
        R("caps", "BLOCKED EPERM socket", why="seccomp"),
    )),
    Case("netlink-audit", ("netlink-audit",), ("seccomp", "nested userns"), rows=(
        R("", "BLOCKED EPERM socket", why="seccomp: netlink other than ROUTE"),
        R("seccomp", "BLOCKED ECONNREFUSED request",
          why="the kernel answers audit only in the initial userns"),
        R("caps", "BLOCKED EPERM socket", why="seccomp"),
    )),
    Case("netlink-route", ("netlink-route",), (),
         single="control: NETLINK_ROUTE stays allowed (ip, getaddrinfo)", rows=(
        R("", "OPEN socket"),
    )),

    # ---- mounts and handles (#21, #22)
    Case("mount-cgroup", ("mount-cgroup", "/tmp/cg"), ("seccomp", "caps", "nested userns"),
         rows=(
        R("", "BLOCKED EPERM mount fsopen=EPERM", why="seccomp: the mount family"),
        R("seccomp", "BLOCKED EPERM mount fsopen=EPERM",
          why="no CAP_SYS_ADMIN over the mount namespace"),
        R("caps", "BLOCKED EPERM mount fsopen=EPERM", why="seccomp"),
        R("seccomp,caps", {"root": "BLOCKED EPERM mount fsconfig=EPERM",
                           "user": "BLOCKED EPERM mount fsopen=EPERM"},
          why="control: a uid-0 command with every capability of its own userns may "
              "open a context, but the cgroup namespace belongs to the sandbox's userns "
              "(nested userns); uid 65534 loses its capabilities at exec anyway"),
    )),
    Case("open-by-handle", ("open-by-handle", "{h.readable}"),
         ("seccomp", "caps", "nested userns"), rows=(
        R("", "BLOCKED EPERM open_by_handle_at", why="seccomp"),
        R("seccomp", "BLOCKED EPERM open_by_handle_at", why="no CAP_DAC_READ_SEARCH"),
        R("caps", "BLOCKED EPERM open_by_handle_at", why="seccomp"),
        R("seccomp,caps", "BLOCKED EPERM open_by_handle_at",
          why="capabilities of the command's own userns do not reach the host's mount"),
    )),

    # ---- ABIs (#23)
    Case("x32", ("x32",), ("seccomp", "kernel"), rows=(
        R("", "signal:SIGSYS", why="seccomp: a non-native ABI kills the process"),
        R("seccomp", "BLOCKED ENOSYS", why="kernel: CONFIG_X86_X32_ABI is not set"),
    )),
    Case("i386", ("i386",), ("seccomp",),
         single="int $0x80 reaches the ia32 table (IA32_EMULATION=y): only seccomp's "
                "architecture check stops it", rows=(
        R("", "signal:SIGSYS"),
        R("seccomp", "OPEN getpid"),
    )),

    # ---- files (#4, #5)
    Case("write-init-exe", ("write-exe", "/proc/1/exe"),
         ("dumpable", "nested userns", "landlock"), rows=(
        R("", "BLOCKED EACCES opened", why="init is not dumpable"),
        R("dumpable", "BLOCKED EACCES opened",
          why="no CAP_SYS_PTRACE over init's userns; Landlock"),
        R("landlock", "BLOCKED EACCES opened", why="init is not dumpable"),
        R("seccomp", "BLOCKED EACCES opened", why="init is not dumpable"),
    )),
    Case("write-self-exe", ("write-exe", "/proc/self/exe"), ("kernel", "mount view"), rows=(
        R("", {"root": "BLOCKED ETXTBSY opened", "user": "BLOCKED EACCES opened"},
          why="root: the running binary (the read-only view and Landlock follow); "
              "uid 65534: the binary is root's, mode 0755"),
        R("landlock", {"root": "BLOCKED ETXTBSY opened", "user": "BLOCKED EACCES opened"}),
        R("seccomp", {"root": "BLOCKED ETXTBSY opened", "user": "BLOCKED EACCES opened"}),
    )),
    Case("write-core-pattern", ("write-exe", "/proc/sys/kernel/core_pattern"),
         ("mount view",),
         single="/proc/sys is a read-only bind; Landlock grants writes to existing /proc "
                "files and a root caller's uid owns the host's sysctls, so for root the "
                "bind is the only layer", rows=(
        R("", {"root": "BLOCKED EROFS opened", "user": "BLOCKED EACCES opened"}),
        R("landlock", {"root": "BLOCKED EROFS opened", "user": "BLOCKED EACCES opened"}),
        R("caps", {"root": "BLOCKED EROFS opened", "user": "BLOCKED EACCES opened"}),
    )),
    Case("fds", ("fds",), ("close-fds", "init close"), fds=True, rows=(
        R("", "BLOCKED none", why="init's close_range, then the command's"),
        R("close-fds", "BLOCKED none",
          why="init's close_range when it starts (the switch skips only the command's)"),
    )),

    # ---- signals (#27)
    Case("kill-host", ("kill", "{h.sleep_pid}", "9"), ("pidns", "landlock"), rows=(
        R("", "BLOCKED ESRCH", why="pidns: the host pid names nothing"),
        R("landlock", "BLOCKED ESRCH", why="pidns"),
        R("seccomp", "BLOCKED ESRCH", why="pidns"),
    )),
    Case("kill-init", ("kill", "1", "15"), ("landlock",),
         single="init is the only process outside the command's domain it can name", rows=(
        R("", "BLOCKED EPERM", why="Landlock signal scope"),
        R("seccomp", "BLOCKED EPERM", why="Landlock signal scope"),
        R("landlock", "OPEN sent", rc=SIGTERM_EXIT,
          why="delivered to init, which relays SIGTERM to the command: the probe dies "
              "of it (harmless)"),
    )),
    Case("kill-init-0", ("kill", "1", "0"), ("landlock",), single="as kill-init", rows=(
        R("", "BLOCKED EPERM"),
        R("landlock", "OPEN sent"),
    )),

    # ---- environment, setuid (#25, #26)
    Case("ld-preload", ("ld-preload",), ("env",),
         single="only cordon's environment filter drops LD_*",
         env={"LD_PRELOAD": "/nonexistent-cordon.so", "LD_LIBRARY_PATH": "/nonexistent",
              "LD_AUDIT": "/nonexistent-cordon-audit.so"}, rows=(
        R("", "BLOCKED none"),
        R("env", "OPEN LD_PRELOAD,LD_LIBRARY_PATH,LD_AUDIT"),
    )),
    Case("setuid-root", ("setuid",), ("nnp", "nested userns", "securebits"), exe="{h.suid_root}",
         rows=(
        R("", {"root": "BLOCKED uid=0,0,0 capeff=0",
               "user": "BLOCKED uid=65534,65534,65534 capeff=0"},
          why="no_new_privs; uid 0 is not mapped for uid 65534; SECBIT_NOROOT and an "
              "empty bounding set for root"),
        R("nnp", NNP_ALONE, rc=125, why=NNP_ALONE_WHY),
        R("nnp,landlock", NNP_LANDLOCK, rc=125, why=NNP_ALONE_WHY),
        R("nnp,landlock,seccomp", {"root": "BLOCKED uid=0,0,0 capeff=0",
                                   "user": "BLOCKED uid=65534,65534,65534 capeff=0"},
          why="root: SECBIT_NOROOT, empty bounding set; uid 65534: the owner is unmapped"),
    )),
    Case("setuid-nobody", ("setuid",), ("nnp", "nested userns"), exe="{h.suid_nobody}",
         root_only=True, rows=(
        R("", "BLOCKED uid=0,0,0 capeff=0", why="no_new_privs; uid 65534 is not mapped"),
        R("nnp", NNP_ALONE, rc=125, why=NNP_ALONE_WHY),
        R("nnp,landlock", NNP_LANDLOCK, rc=125, why=NNP_ALONE_WHY),
        R("nnp,landlock,seccomp", "BLOCKED uid=0,0,0 capeff=0",
          why="uid 65534 is not mapped"),
    )),

    # ---- miscellaneous
    Case("personality", ("personality",), ("seccomp",),
         single="personality() needs no privilege", rows=(
        R("", "BLOCKED EPERM"),
        R("seccomp", "OPEN addr_no_randomize"),
    )),
    Case("chroot", ("chroot",), ("caps",),
         single="chroot is allowed by seccomp on purpose; without CAP_SYS_CHROOT it "
                "fails, and with it (caps off) it only narrows a locked view", rows=(
        R("", "BLOCKED EPERM chroot"),
        R("seccomp", "BLOCKED EPERM chroot"),
        R("caps", {"root": "OPEN chroot", "user": "BLOCKED EPERM chroot"},
          why="a uid-0 command keeps CAP_SYS_CHROOT of its own userns; uid 65534 "
              "loses every capability at exec"),
    )),
    Case("iopl", ("iopl",), ("kernel",),
         single="this kernel has no iopl() at all (CONFIG_X86_IOPL_IOPERM is not set)",
         rows=(
        R("", "BLOCKED ENOSYS iopl"),
        R("seccomp", "BLOCKED ENOSYS iopl"),
        R("caps", "BLOCKED ENOSYS iopl"),
    )),
]

CASES = {c.name: c for c in MATRIX}


# ---------------------------------------------------------------------------
# host-side resources a case names in its arguments


class Host:
    """Listeners and processes outside the sandbox, created on first use
    ("{h.tcp_port}" in a case's arguments) and removed at close()."""

    def __init__(self, sb):
        self.sb = sb
        self._socks = {}
        self._procs = []
        self._files = []
        self.fds = []

    def _sock(self, name, family, type_, addr, chown=None):
        if name not in self._socks:
            s = socket.socket(family, type_)
            s.bind(addr)
            if chown:
                # the caller's own socket: uid 65534 needs write on the inode
                os.chown(addr, self.sb.uid, self.sb.gid)
                self._files.append(addr)
            if type_ == socket.SOCK_STREAM:
                s.listen(8)
            s.setblocking(False)
            self._socks[name] = s
        return self._socks[name]

    @property
    def tcp_port(self):
        return self._sock("tcp", socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 0)) \
            .getsockname()[1]

    @property
    def udp_port(self):
        return self._sock("udp", socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 0)) \
            .getsockname()[1]

    @property
    def host_ip(self):
        """A non-loopback address of the host (the listeners bind 0.0.0.0)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(("198.51.100.1", 9))  # sends nothing: picks the source address
            ip = s.getsockname()[0]
        except OSError:
            pytest.skip("the host has no non-loopback IPv4 route")
        finally:
            s.close()
        return ip

    @property
    def abstract(self):
        name = "cordon-escape-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self._sock("abstract", socket.AF_UNIX, socket.SOCK_STREAM, "\0" + name)
        return name

    @property
    def abstract_dgram(self):
        name = "cordon-escape-dg-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self._sock("abstract_dgram", socket.AF_UNIX, socket.SOCK_DGRAM, "\0" + name)
        return name

    @property
    def unix_path(self):
        p = os.path.join(self.sb.ws, "listener.sock")
        self._sock("unix", socket.AF_UNIX, socket.SOCK_STREAM, p, chown=True)
        return p

    @property
    def dgram_path(self):
        p = os.path.join(self.sb.ws, "dgram.sock")
        self._sock("dgram", socket.AF_UNIX, socket.SOCK_DGRAM, p, chown=True)
        return p

    @property
    def sleep_pid(self):
        p = subprocess.Popen(["sleep", "60"])
        self._procs.append(p)
        return p.pid

    @property
    def secret(self):
        return self.sb.write("home/ws/secret.txt", "SECRET-IN-WORKSPACE\n")

    @property
    def readable(self):
        self.sb.write("home/ws/readable.txt", "readable\n")
        return "readable.txt"

    def _suid(self, name, uid):
        p = os.path.join(self.sb.ws, name)
        shutil.copyfile(os.path.join(self.sb.base, "bin", "escape-probe"), p)
        os.chown(p, uid, uid)
        os.chmod(p, 0o4755)
        return p

    @property
    def suid_root(self):
        return self._suid("suid-root", 0)

    @property
    def suid_nobody(self):
        return self._suid("suid-nobody", 65534)

    def open_fds(self):
        f = os.open(self.sb.write("outside/leak.txt", "LEAK\n"), os.O_RDONLY)
        d = os.open(self.sb.outside, os.O_RDONLY | os.O_DIRECTORY)
        for fd in (f, d):
            os.set_inheritable(fd, True)
        self.fds = [f, d]
        return self.fds

    def reached(self, name):
        """Did anything reach listener `name` (a connection or a datagram)?"""
        s = self._socks[name]
        try:
            if s.type == socket.SOCK_STREAM:
                c, _ = s.accept()
                c.close()
            else:
                s.recv(4096)
            return True
        except (BlockingIOError, InterruptedError):
            return False

    def alive(self):
        return all(p.poll() is None for p in self._procs)

    def close(self):
        for s in self._socks.values():
            s.close()
        for f in self._files:
            try:
                os.unlink(f)
            except OSError:
                pass
        for p in self._procs:
            p.kill()
            p.wait()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def host(sb):
    h = Host(sb)
    yield h
    h.close()


# ---------------------------------------------------------------------------
# running a row

# Joins a fresh session keyring, adds a "user" key to it (owned by the
# sandbox's uid: the caller's key), then execs the rest of argv with @KEY@ and
# @SES@ replaced. The keyring and key die with the last process holding them.
KEYRING_WRAPPER = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_add_key, SYS_keyctl = 248, 250
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CHOWN = 1, 4
uid, desc, payload = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
ses = libc.syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, None)
key = libc.syscall(SYS_add_key, b"user", desc, payload, len(payload), ctypes.c_long(-3))
if ses < 0 or key < 0:
    sys.exit("keyring setup: errno %d" % ctypes.get_errno())
if uid != os.geteuid() and libc.syscall(SYS_keyctl, KEYCTL_CHOWN, ctypes.c_long(key),
                                        ctypes.c_long(uid), ctypes.c_long(-1)) < 0:
    sys.exit("keyctl chown: errno %d" % ctypes.get_errno())
argv = [a.replace("@KEY@", str(key)).replace("@SES@", str(ses)) for a in sys.argv[5:]]
os.execvp(argv[0], argv)
'''


def expected(row, user):
    e = row.expect
    return e[user] if isinstance(e, dict) else e


def run_row(sb, probe, host, case, row, tty_state=None):
    tty_state = [] if tty_state is None else tty_state
    fmt = lambda s: s.format(h=host)
    args = [fmt(a) for a in case.args]
    opts = [fmt(o) for o in case.opts]
    exe = fmt(case.exe) if case.exe else None
    argv = probe.argv(args, row.off, opts, exe)
    kw = {"stdin": subprocess.DEVNULL}
    master = slave = None
    if case.keyring:
        argv = [PY, "-c", KEYRING_WRAPPER, str(sb.uid), KEY_DESC, KEY_PAYLOAD.decode(),
                "--"] + argv
    if case.fds:
        kw["pass_fds"] = tuple(host.open_fds())
    if case.pty:
        master, slave = os.openpty()
        tty.setraw(slave)  # injected bytes are readable at once, and not echoed

        def ctty():
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        kw.update(stdin=slave, preexec_fn=ctty)
    try:
        with subprocess.Popen(argv, cwd=sb.ws, env=sb.env(case.env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, **kw) as proc:
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        p = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        # A root caller's sandbox runs in a pids cgroup of its own: gone now.
        assert not os.path.exists("/sys/fs/cgroup/pids/cordon-%d" % proc.pid)
        injected = b""
        if case.pty:
            # What stays on the caller's tty after the run: its line
            # discipline and exclusive mode (TIOCGEXCL).
            ld = bytearray(4)
            fcntl.ioctl(slave, termios.TIOCGETD, ld)
            excl = bytearray(4)
            fcntl.ioctl(slave, 0x80045440, excl)
            tty_state[:] = [int.from_bytes(ld, "little"), int.from_bytes(excl, "little")]
            os.set_blocking(slave, False)
            try:
                injected = os.read(slave, 64)
            except BlockingIOError:
                pass
            except OSError:
                # N_NULL (tiocsetd's control row) refuses reads:
                # EOPNOTSUPP; nothing was injected then.
                assert tty_state[0] != 0
    finally:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
    probe.check_sanitizers(p.stderr)
    return p, injected


def row_params():
    out = []
    for c in MATRIX:
        for r in c.rows:
            cfg = "all" if not r.off else "no-" + "+".join(r.off)
            out.append(pytest.param(c.name, r, id="%s-%s" % (c.name, cfg)))
    return out


@pytest.mark.parametrize("name,row", row_params())
def test_escape(request, sb, probe, host, layer_switches, name, row):
    case = CASES[name]
    if case.root_only and sb.user != "root":
        pytest.skip("a root caller's case")
    if row.off and not layer_switches:
        pytest.skip("cordon was built without -Dtest_switches=true")
    if row.bug:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=row.bug,
                                                  raises=KnownBug))
    want = expected(row, sb.user)
    tty_state = []
    p, injected = run_row(sb, probe, host, case, row, tty_state)
    detail = "cordon %s\nrc=%d\nstdout=%r\nstderr=%s" % (
        " ".join(probe.cordon_args(case.args, row.off)), p.returncode, p.stdout, p.stderr)
    if row.bug and (p.stdout, p.returncode) == ("RESULT %s\n" % row.observed, 0):
        # The known hole, confirmed from the host's side when it has a listener.
        assert not case.reach or host.reached(case.reach), detail
        raise KnownBug(row.bug + "\n" + detail)

    if want.startswith("fail:"):
        assert (p.stdout, p.stderr, p.returncode) == ("", want[5:] + "\n", 125), detail
        return
    assert p.returncode != 125, "the sandbox failed to start\n" + detail
    if want.startswith("signal:"):
        sig = getattr(signal, want.split(":")[1])
        assert (p.stdout, p.returncode) == ("", 128 + sig), detail
    else:
        rc = 0 if row.rc is None else row.rc
        assert (p.stdout, p.returncode) == ("RESULT %s\n" % want, rc), detail
    # cordon says nothing of its own, except the exit summary of what it
    # blocked (each refused syscall is recorded: see tests/integration/
    # test_violations.py).
    assert not [l for l in p.stderr.splitlines()
                if l.startswith("cordon:") and not l.startswith("cordon: blocked ")], detail

    # What the host saw must agree with what the probe says.
    opened = want.startswith("OPEN")
    if case.reach:
        assert host.reached(case.reach) == opened, "host listener: " + detail
    if case.pty:
        assert injected == (b"ab" if opened and name.startswith("tiocsti") else b""), \
            "the caller's tty: " + detail
        N_TTY, N_NULL = 0, 27
        assert tty_state == [N_NULL if opened and name.startswith("tiocsetd") else N_TTY,
                             1 if opened and name.startswith("tiocexcl") else 0], \
            "the caller's tty (line discipline, exclusive): %r\n%s" % (tty_state, detail)
    if name == "kill-host":
        assert host.alive(), "the host process was killed"


# ---------------------------------------------------------------------------
# the matrix itself


def test_matrix_is_complete():
    """Every class names its layers; a class not marked single-layer is closed
    by at least two, and each switchable one among them has a row with that
    layer alone off that is still blocked; a single-layer class shows what its
    layer stops (a row with it off, or its one row)."""
    assert len(CASES) == len(MATRIX), "duplicate class names"
    for c in MATRIX:
        offs = {r.off: r for r in c.rows}
        assert () in offs, "%s: no all-layers row" % c.name
        for r in c.rows:
            assert set(r.off) <= set(SWITCHABLE), "%s: unknown layer in %r" % (c.name, r.off)
        if c.single:
            continue
        assert len(c.closed_by) >= 2, "%s: one layer only, and not marked single" % c.name
        for layer in c.closed_by:
            if layer in SWITCHABLE:
                r = offs.get((layer,))
                assert r is not None, "%s: no row with %s off" % (c.name, layer)
                for u in ("root", "user"):
                    assert expected(r, u).startswith(("BLOCKED", "signal:", "fail:")), \
                        "%s: open with %s off" % (c.name, layer)


def test_probe_detects_leaked_fds_outside(sb, probe, host):
    """Control for the fds class: run outside cordon, the probe sees the fds."""
    fds = host.open_fds()
    p = subprocess.run(sb.argv([])[:-1] + [probe.path, "fds"], pass_fds=tuple(fds),
                       capture_output=True, text=True, timeout=30)
    line = p.stdout.strip()
    assert p.returncode == 0 and line.startswith("RESULT OPEN "), p.stdout + p.stderr
    assert "%d:%s" % (fds[0], os.path.join(sb.outside, "leak.txt")) in line
    assert "%d:%s" % (fds[1], sb.outside) in line


# ---------------------------------------------------------------------------
# fork bomb: the limits layer


def _host_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _pidns_members(ns):
    n = 0
    for pid in _host_pids():
        try:
            if os.readlink("/proc/%d/ns/pid" % pid) == ns:
                n += 1
        except OSError:
            pass
    return n


def _readline(f, timeout):
    r, _, _ = select.select([f], [], [], timeout)
    return f.readline() if r else ""


@pytest.mark.parametrize("off,n", [((), 10000), (("limits",), 200)],
                         ids=["all", "no-limits"])
def test_forkbomb(sb, probe, layer_switches, off, n):
    """With {"limits": {"nproc": 64}} a fork bomb stops at 64 processes of
    the sandbox (RLIMIT_NPROC in the command's userns for uid 65534, plus the
    pids cgroup cordon-<pid> for root, where init counts too) with EAGAIN, and
    the host's process count stays bounded meanwhile. With the limits layer
    off it is not contained (shown with 200, not a real bomb)."""
    if off and not layer_switches:
        pytest.skip("cordon was built without -Dtest_switches=true")
    settings = sb.settings({"limits": {"nproc": 64}})
    base_count = len(_host_pids())
    proc = subprocess.Popen(probe.argv(["forkbomb", str(n), "hold"], off, ["-s", settings]),
                            cwd=sb.ws, env=sb.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cgroup = "/sys/fs/cgroup/pids/cordon-%d" % proc.pid
    try:
        line = _readline(proc.stdout, 30).decode()
        during = len(_host_pids())
        children = open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)).read().split()
        assert len(children) == 1, "cordon's children: %r" % children
        ns = os.readlink("/proc/%s/ns/pid" % children[0])
        members = _pidns_members(ns)
        has_cgroup = os.path.isdir(cgroup)
        pids_max = open(cgroup + "/pids.max").read().strip() if has_cgroup else None
        out, err = proc.communicate(input=b"x", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    probe.check_sanitizers(err)
    assert proc.returncode == 0, err
    assert out == b"", out
    if not off:
        # uid 65534: the probe and 63 children; root: init, the probe, 62.
        forked = {"root": 62, "user": 63}[sb.user]
        assert line == "RESULT BLOCKED EAGAIN forked=%d\n" % forked
        assert members == 2 + forked <= 65
        assert during - base_count < 64 + 16, "host count %d -> %d" % (base_count, during)
        assert (has_cgroup, pids_max) == ((True, "64") if sb.user == "root" else (False, None))
    else:
        assert line == "RESULT OPEN forked=200\n"
        assert members == 202
        assert during - base_count >= 200 - 16
        assert not has_cgroup
    # Nothing of the sandbox survives, and root's cgroup is removed.
    assert _pidns_members(ns) == 0
    assert not os.path.exists(cgroup)


if __name__ == "__main__":
    # The matrix as a table: python3 tests/escape/test_escape.py
    print("| class | closed by | layers off | root | uid 65534 | exit | why |")
    print("|---|---|---|---|---|---|---|")
    for c in MATRIX:
        for r in c.rows:
            e = {u: expected(r, u) for u in ("root", "user")}
            if r.bug:
                e = {u: "**%s** (should be %s; BUG)" % (r.observed, v) for u, v in e.items()}
            rc = r.rc if r.rc is not None else (SIGSYS_EXIT if e["root"] == "signal:SIGSYS"
                                                else 0)
            print("| %s | %s | %s | %s | %s | %s | %s |" % (
                c.name if r is c.rows[0] else "", ", ".join(c.closed_by) or "-",
                ",".join(r.off) or "(none)", e["root"],
                "(root only)" if c.root_only else e["user"], rc,
                r.why or (c.single if r is c.rows[0] and c.single else "")))
