"""A seccomp filter for a sandboxed process: no system call that reaches another process or outlives this one.

Namespaces and a uid of its own separate a sandbox from the others, but a few kernel facilities are shared beyond
them: the kernel's keyrings (a uid's keys outlive its processes and, without a filter, carry data between two
sandboxes), debugging and memory access across processes (ptrace, process_vm_*, pidfd_getfd, kcmp), new namespaces
and mounts (a user namespace would give the process capabilities of its own), kernel modules, BPF, perf,
userfaultfd and io_uring. The filter answers each of these with EPERM (clone3 with ENOSYS, so that the C library
falls back to clone, whose namespace flags are refused), and allows everything else.

The program is classic BPF, written out here because the standard library has no binding for libseccomp.
"""

from __future__ import annotations

import ctypes
import errno
import platform

from autograder.grading.jail.isolate import LIBC

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
# BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_JMP|JSET|K, BPF_RET|K
LOAD_WORD, JUMP_IF_EQUAL, JUMP_IF_AT_LEAST, JUMP_IF_SET, RETURN = 0x20, 0x15, 0x35, 0x45, 0x06
NUMBER, ARCH, FIRST_ARGUMENT = 0, 4, 16  # offsets in struct seccomp_data (the argument's low 32 bits: little endian)
X32_SYSCALL_BIT = 0x40000000
NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

# System calls refused, by name; their numbers per architecture below.
REFUSED = ("add_key", "request_key", "keyctl", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
           "pidfd_getfd", "bpf", "perf_event_open", "userfaultfd", "setns", "unshare", "mount", "umount2",
           "pivot_root", "open_by_handle_at", "name_to_handle_at", "open_tree", "move_mount", "fsopen", "fsconfig",
           "fsmount", "fspick", "mount_setattr", "kexec_load", "init_module", "finit_module", "delete_module",
           "reboot", "swapon", "swapoff", "acct", "quotactl", "io_uring_setup", "io_uring_enter",
           "io_uring_register")
ARCHITECTURES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, {
        "add_key": 248, "request_key": 249, "keyctl": 250, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "kcmp": 312, "pidfd_getfd": 438, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "setns": 308, "unshare": 272, "mount": 165, "umount2": 166, "pivot_root": 155,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "kexec_load": 246, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163,
        "quotactl": 179, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "clone": 56, "clone3": 435}),
    "aarch64": (0xC00000B7, {
        "add_key": 217, "request_key": 218, "keyctl": 219, "ptrace": 117, "process_vm_readv": 270,
        "process_vm_writev": 271, "kcmp": 272, "pidfd_getfd": 438, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "setns": 268, "unshare": 97, "mount": 40, "umount2": 39, "pivot_root": 41,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "kexec_load": 104, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89,
        "quotactl": 60, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "clone": 220, "clone3": 435}),
}


class _Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


ALLOW, REFUSE, NO_SUCH_CALL = "allow", "refuse", "no such call"  # the program's three endings
Step = tuple[int, object, object, int]  # (code, where to go if true, if false: a label or None for the next, constant)


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter for an architecture, as (code, jump if true, jump if false, constant) instructions."""
    arch, numbers = ARCHITECTURES[machine]
    steps: list[Step] = [(LOAD_WORD, None, None, ARCH), (JUMP_IF_EQUAL, None, REFUSE, arch),  # another ABI: refuse
                         (LOAD_WORD, None, None, NUMBER)]
    if machine == "x86_64":
        steps.append((JUMP_IF_AT_LEAST, REFUSE, None, X32_SYSCALL_BIT))  # the x32 ABI's numbers, as a whole
    steps += [(JUMP_IF_EQUAL, REFUSE, None, numbers[name]) for name in REFUSED]
    steps += [(JUMP_IF_EQUAL, NO_SUCH_CALL, None, numbers["clone3"]),
              (JUMP_IF_EQUAL, None, ALLOW, numbers["clone"]),
              (LOAD_WORD, None, None, FIRST_ARGUMENT),
              (JUMP_IF_SET, REFUSE, ALLOW, NEW_NAMESPACES)]
    endings = {ALLOW: SECCOMP_RET_ALLOW, REFUSE: SECCOMP_RET_ERRNO | errno.EPERM,
               NO_SUCH_CALL: SECCOMP_RET_ERRNO | errno.ENOSYS}
    where = {label: len(steps) + index for index, label in enumerate(endings)}

    def offset(target: object, at: int) -> int:
        return 0 if target is None else where[target] - at - 1

    return [(code, offset(yes, at), offset(no, at), k) for at, (code, yes, no, k) in enumerate(steps)] + \
        [(RETURN, 0, 0, value) for value in endings.values()]


def install() -> str:
    """Install the filter on this process and its future children; '' when done, else why it could not be."""
    machine = platform.machine()
    if machine not in ARCHITECTURES:
        return f"no seccomp filter for the {machine} architecture (only {', '.join(ARCHITECTURES)})"
    instructions = program(machine)
    array = (_Instruction * len(instructions))(*[_Instruction(*i) for i in instructions])
    prog = _Program(len(instructions), ctypes.cast(array, ctypes.POINTER(_Instruction)))
    if LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return f"the seccomp filter could not be installed (errno {ctypes.get_errno()})"
    return ""
