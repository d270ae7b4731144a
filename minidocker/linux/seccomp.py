"""seccomp(2) (chapter 08): a filter the kernel runs before each of this thread's system calls.

The filter is a classic BPF program (minidocker/security/bpf.py) passed as a struct sock_fprog:
its length in instructions and a pointer to them. The kernel copies it, checks it, and runs it
on every system call of this thread and of every process it starts, for good: there is no call
to remove a filter. Without no_new_privs it takes CAP_SYS_ADMIN (EACCES otherwise).
"""

import ctypes
import os

from minidocker.linux import _check, _libc, _traced, flag_names

SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "armv7l": 383, "riscv64": 277}[os.uname().machine]
SECCOMP_SET_MODE_FILTER = 1  # seccomp(2)'s operations: 0 is the old strict mode (read, write, exit only)
SECCOMP_OPERATIONS = {"SECCOMP_SET_MODE_STRICT": 0, "SECCOMP_SET_MODE_FILTER": 1}
SECCOMP_FILTER_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@_traced(lambda program, flags=0: f"SECCOMP_SET_MODE_FILTER, {flag_names(flags, SECCOMP_FILTER_FLAGS)}, "
                                  f"{{len={len(program) // 8}, filter=...}}", name="seccomp")
def seccomp_set_mode_filter(program: bytes, flags: int = 0) -> None:
    """Load a filter (struct sock_filter[], 8 bytes each) on the calling thread."""
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(code))
    _check(_libc.syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags),
                         ctypes.byref(fprog)), "seccomp", "SECCOMP_SET_MODE_FILTER", flags, f"{len(program) // 8} instructions")
