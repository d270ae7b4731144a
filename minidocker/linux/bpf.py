"""bpf(2) (chapter 08): load a small program into the kernel, and hang it on a cgroup.

eBPF is the kernel's own instruction set: a program is an array of 8-byte instructions, checked
by the kernel's verifier (no loop it cannot bound, no read outside its context) before it may
run. cgroup v2 has no devices.allow file: the device cgroup there *is* such a program, run on
every open and mknod of a device node (minidocker/cgroups/devices_bpf.py builds it). One
syscall, bpf(cmd, attr, size), does everything; `attr` is a union whose fields depend on cmd.
(seccomp's filters are *classic* BPF, an older and smaller language: see seccomp.py.)
"""

import ctypes
import errno as errno_names
import os
import struct

from minidocker.linux import _check, _fd_target, _libc, _option_name, _quote, _traced, flag_names

SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280}[os.uname().machine]
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8  # the two commands we need of bpf(2)'s ~40
BPF_PROG_TYPE_CGROUP_DEVICE = 15  # the program's type says what it may see: here a device's numbers
BPF_CGROUP_DEVICE = 6  # where it is attached: the device check of a cgroup
BPF_F_ALLOW_MULTI = 2  # our program runs beside the parents' (systemd's), and all must say yes
BPF_PROG_TYPES, BPF_ATTACH_TYPES = {"BPF_PROG_TYPE_CGROUP_DEVICE": 15}, {"BPF_CGROUP_DEVICE": 6}  # for the trace
BPF_ATTACH_FLAGS = {"BPF_F_ALLOW_OVERRIDE": 1, "BPF_F_ALLOW_MULTI": 2}
_BPF_ATTR_SIZE = 120  # union bpf_attr; the kernel reads the fields it knows, the rest must be 0


def _bpf(cmd: int, attr) -> int:
    return _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(len(attr)))


@_traced(lambda prog_type, instructions, license="GPL", name="":
         f"BPF_PROG_LOAD, {{prog_type={_option_name(prog_type, BPF_PROG_TYPES)}, insn_cnt={len(instructions) // 8}, "
         f"license={_quote(license)}, prog_name={_quote(name)}}}", name="bpf")
def bpf_prog_load(prog_type: int, instructions: bytes, license: str = "GPL", name: str = "") -> int:
    """Load a program (its instructions, 8 bytes each); returns its fd. When the verifier
    refuses it, the OSError carries the verifier's own log: which instruction, and why."""
    code, lic = ctypes.create_string_buffer(instructions, len(instructions)), ctypes.create_string_buffer(license.encode())

    def attempt(log=None):
        attr = ctypes.create_string_buffer(_BPF_ATTR_SIZE)
        struct.pack_into("=IIQQ", attr, 0, prog_type, len(instructions) // 8,
                         ctypes.addressof(code), ctypes.addressof(lic))
        if log is not None:  # log_level 1, log_size, log_buf: the verifier writes what it saw
            struct.pack_into("=IIQ", attr, 24, 1, len(log), ctypes.addressof(log))
        struct.pack_into("16s", attr, 48, name.encode()[:15])
        return _bpf(BPF_PROG_LOAD, attr)

    fd = attempt()
    if fd == -1:
        err, log = ctypes.get_errno(), ctypes.create_string_buffer(1 << 16)
        attempt(log)  # the same load again, now with a log, to say why
        lines = log.value.decode(errors="replace").strip().splitlines()
        # The verifier walks the program and stops at the first fault: the last lines before its
        # statistics ("processed N insns...") say which instruction, and what is wrong with it.
        detail = [line for line in lines if not line.startswith("processed ")][-2:]
        raise OSError(err, f"bpf(BPF_PROG_LOAD): {os.strerror(err)} [{errno_names.errorcode.get(err, err)}]"
                      + (f": {' / '.join(detail)}" if detail else ""))
    return fd


@_traced(lambda target_fd, prog_fd, attach_type, flags=0:
         f"BPF_PROG_ATTACH, {{target_fd={_fd_target(target_fd)}, attach_bpf_fd={prog_fd}, "
         f"attach_type={_option_name(attach_type, BPF_ATTACH_TYPES)}, "
         f"attach_flags={flag_names(flags, BPF_ATTACH_FLAGS)}}}", name="bpf")
def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    """Attach a loaded program to `target_fd` (for a cgroup program: the cgroup's directory, open).
    The cgroup holds the program from then on: closing our fd does not unload it."""
    attr = ctypes.create_string_buffer(_BPF_ATTR_SIZE)
    struct.pack_into("=IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    _check(_bpf(BPF_PROG_ATTACH, attr), "bpf", "BPF_PROG_ATTACH", target_fd, prog_fd, attach_type)
