"""Run a program as if this kernel lacked a feature: a seccomp filter of our
own, installed before exec, makes the syscalls behind that feature fail the
way an older or locked-down kernel would. Used by test_doctor.py to induce
real faults (no test-only switch involved): `cordon doctor` must notice them
with its probes, and `cordon` itself must refuse to run or say what it runs
without.

    python3 kernel_faults.py FAULT[,FAULT...] -- PROGRAM [ARGS...]

Faults:
  landlock     landlock_create_ruleset fails with ENOSYS (a kernel built
               without Landlock)
  seccomp      seccomp(SECCOMP_SET_MODE_FILTER) fails with ENOSYS
  notify       seccomp(SECCOMP_GET_NOTIF_SIZES) fails with EINVAL and
               SECCOMP_FILTER_FLAG_NEW_LISTENER is refused (a kernel before
               5.0)
  userns       clone and unshare with CLONE_NEWUSER fail with EPERM (Debian's
               kernel.unprivileged_userns_clone=0); clone3 gets ENOSYS so
               libc falls back to clone
  userns-caps  mount fails with EPERM: the namespaces are created but hold no
               capability (Ubuntu's AppArmor restriction of unprivileged user
               namespaces)

Only x86_64 and aarch64 are known; elsewhere the script exits 77 (skip).
The filter only ever makes calls fail; it cannot weaken anything.
"""
import ctypes
import errno
import os
import platform
import sys

ARCHES = {
    # machine: (AUDIT_ARCH, {syscall: nr})
    "x86_64": (0xC000003E, {"landlock_create_ruleset": 444, "seccomp": 317, "mount": 165,
                            "clone": 56, "unshare": 272, "clone3": 435}),
    "aarch64": (0xC00000B7, {"landlock_create_ruleset": 444, "seccomp": 277, "mount": 40,
                             "clone": 220, "unshare": 97, "clone3": 435}),
}

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
CLONE_NEWUSER = 0x10000000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_NOTIF_SIZES = 3
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
OFF_NR, OFF_ARCH, OFF_ARG0, OFF_ARG1 = 0, 4, 16, 24


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def rules_for(faults, nr):
    """(syscall nr, [(arg offset, op, value)], errno) triples."""
    rules = []
    for f in faults:
        if f == "landlock":
            rules.append((nr["landlock_create_ruleset"], [], errno.ENOSYS))
        elif f == "seccomp":
            rules.append((nr["seccomp"], [(OFF_ARG0, BPF_JEQ_K, SECCOMP_SET_MODE_FILTER)],
                          errno.ENOSYS))
        elif f == "notify":
            rules.append((nr["seccomp"], [(OFF_ARG0, BPF_JEQ_K, SECCOMP_GET_NOTIF_SIZES)],
                          errno.EINVAL))
            rules.append((nr["seccomp"], [(OFF_ARG0, BPF_JEQ_K, SECCOMP_SET_MODE_FILTER),
                                          (OFF_ARG1, BPF_JSET_K,
                                           SECCOMP_FILTER_FLAG_NEW_LISTENER)], errno.EINVAL))
        elif f == "userns":
            rules.append((nr["clone3"], [], errno.ENOSYS))
            rules.append((nr["clone"], [(OFF_ARG0, BPF_JSET_K, CLONE_NEWUSER)], errno.EPERM))
            rules.append((nr["unshare"], [(OFF_ARG0, BPF_JSET_K, CLONE_NEWUSER)], errno.EPERM))
        elif f == "userns-caps":
            rules.append((nr["mount"], [], errno.EPERM))
        else:
            raise SystemExit("kernel_faults: unknown fault " + f)
    return rules


def program(arch, rules):
    ins = [(BPF_LD_W_ABS, 0, 0, OFF_ARCH), (BPF_JEQ_K, 1, 0, arch), (BPF_RET_K, 0, 0, RET_ALLOW)]
    for nr, conds, err in rules:
        block = [(BPF_LD_W_ABS, 0, 0, OFF_NR)]
        body = []
        for off, op, val in conds:
            body.append((BPF_LD_W_ABS, 0, 0, off))
            body.append([op, 0, None, val])  # jf patched: skip to the block's end
        body.append((BPF_RET_K, 0, 0, RET_ERRNO | err))
        for i, insn in enumerate(body):
            if isinstance(insn, list):
                insn[2] = len(body) - i - 1
                body[i] = tuple(insn)
        block.append((BPF_JEQ_K, 0, len(body), nr))
        ins += block + body
    ins.append((BPF_RET_K, 0, 0, RET_ALLOW))
    return ins


def install(faults):
    machine = platform.machine()
    if machine not in ARCHES:
        sys.exit(77)
    arch, nr = ARCHES[machine]
    ins = program(arch, rules_for(faults, nr))
    arr = (SockFilter * len(ins))(*[SockFilter(*i) for i in ins])
    prog = SockFprog(len(ins), arr)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        raise SystemExit(__doc__)
    install([f for f in args[0].split(",") if f])
    os.execvp(args[2], args[2:])


if __name__ == "__main__":
    main()
