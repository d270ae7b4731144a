"""cgroup v2's device cgroup: a BPF program, assembled here by hand, that the kernel runs on
every open(2) and mknod(2) of a device node by a process of the cgroup.

v2 has no devices.allow file. Instead the kernel (4.15+) runs the cgroup's BPF_CGROUP_DEVICE
programs and refuses the access (EPERM) unless each says 1. The program sees one struct:

    struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; };
    access_type = access << 16 | type     (access: mknod 1, read 2, write 4; type: block 1, char 2)

We turn the rules into the state v1 would hold (devices.normalize: a default and exceptions) and
emit one small block per exception, then the default:

    r2 = ctx->access_type; r3 = r2 & 0xffff (type); r2 >>= 16 (access)
    r4 = ctx->major; r5 = ctx->minor
    block per exception: if the type, access, major and minor match: r0 = verdict; exit
    r0 = default; exit

runc and youki emit the same shape. The program lives as long as the cgroup holds it: we attach
it to the cgroup's directory and close our fd; rmdir of the cgroup frees it. See
docs/08-hardening.md#cgroup-v2-a-bpf-program.
"""

import os
import struct

from minidocker import linux
from minidocker.cgroups.devices import DeviceException, normalize

# The fields of the context, and the numbers the kernel puts in them (<linux/bpf.h>).
ACCESS_TYPE, MAJOR, MINOR = 0, 4, 8  # offsets in struct bpf_cgroup_dev_ctx
DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# The instructions we need: opcode = class | operation | source (<linux/bpf_common.h>).
LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
MOV_REG = 0xbf  # BPF_ALU64 | BPF_MOV | BPF_X: dst = src
MOV_IMM = 0xb7  # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
AND_IMM = 0x57  # BPF_ALU64 | BPF_AND | BPF_K: dst &= imm
RSH_IMM = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K: dst >>= imm
JEQ_IMM = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: if dst == imm: skip `off` instructions
JNE_IMM = 0x55  # BPF_JMP | BPF_JNE | BPF_K: if dst != imm: skip `off` instructions
EXIT = 0x95  # BPF_JMP | BPF_EXIT: return r0
NEXT = "next"  # a jump's offset before it is known: "to the first instruction after this block"


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> tuple:
    """One instruction as (code, dst, src, off, imm); encode() packs it in 8 bytes."""
    return (code, dst, src, off, imm)


PROLOGUE = [
    insn(LDX_W, dst=2, src=1, off=ACCESS_TYPE),  # r1 points to the context
    insn(MOV_REG, dst=3, src=2),
    insn(AND_IMM, dst=3, imm=0xFFFF),  # r3: the device's type
    insn(RSH_IMM, dst=2, imm=16),  # r2: the access asked for
    insn(LDX_W, dst=4, src=1, off=MAJOR),  # r4: major
    insn(LDX_W, dst=5, src=1, off=MINOR),  # r5: minor
]


def rule_block(ex: DeviceException, default_allow: bool) -> list[tuple]:
    """The instructions that check one exception: they return its verdict (the opposite of the
    default) when the device matches, or fall through to the next block."""
    # --8<-- [start:ex-08-device-rule]
    # Jump to NEXT (the end of this block) as soon as one field does not match: the type in r3,
    # the access in r2, the major in r4, the minor in r5 (a None major or minor matches any).
    # Under a "deny" default the exception must grant every letter asked (r2 & ~mask == 0); under
    # "allow", one letter in common is enough to deny (r2 & mask != 0). Then r0 = verdict; exit.
    mask = sum(ACCESS[letter] for letter in ex.access)
    block = [insn(JNE_IMM, dst=3, off=NEXT, imm=DEV_TYPE[ex.type]),
             insn(MOV_REG, dst=6, src=2)]
    if default_allow:
        block += [insn(AND_IMM, dst=6, imm=mask), insn(JEQ_IMM, dst=6, off=NEXT, imm=0)]
    else:
        block += [insn(AND_IMM, dst=6, imm=~mask & 0b111), insn(JNE_IMM, dst=6, off=NEXT, imm=0)]
    if ex.major is not None:
        block.append(insn(JNE_IMM, dst=4, off=NEXT, imm=ex.major))
    if ex.minor is not None:
        block.append(insn(JNE_IMM, dst=5, off=NEXT, imm=ex.minor))
    block += [insn(MOV_IMM, dst=0, imm=int(not default_allow)), insn(EXIT)]
    return block
    # --8<-- [end:ex-08-device-rule]


def resolve(block: list[tuple]) -> list[tuple]:
    """Replace each NEXT offset with the real one: a jump's offset counts the instructions it
    skips after itself, so from index i to the end of the block it is len(block) - i - 1."""
    return [(code, dst, src, len(block) - i - 1 if off == NEXT else off, imm)
            for i, (code, dst, src, off, imm) in enumerate(block)]


def assemble(rules: list[dict]) -> list[tuple]:
    """The whole program for these OCI rules."""
    default_allow, exceptions = normalize(rules)
    program = list(PROLOGUE)
    for ex in exceptions:
        program += resolve(rule_block(ex, default_allow))
    return program + [insn(MOV_IMM, dst=0, imm=int(default_allow)), insn(EXIT)]


def encode(program: list[tuple]) -> bytes:
    """struct bpf_insn: u8 code, u8 dst:4 src:4 (dst in the low bits), s16 off, s32 imm."""
    return b"".join(struct.pack("<BBhi", code, src << 4 | dst, off, imm) for code, dst, src, off, imm in program)


def disassemble(program: list[tuple]) -> list[str]:
    """The program as a reader would write it, one line per instruction: "if r3 != 2 goto +7"."""
    show = {LDX_W: "r{dst} = *(u32 *)(r{src} + {off})", MOV_REG: "r{dst} = r{src}", MOV_IMM: "r{dst} = {imm}",
            AND_IMM: "r{dst} &= {imm:#x}", RSH_IMM: "r{dst} >>= {imm}", JEQ_IMM: "if r{dst} == {imm} goto +{off}",
            JNE_IMM: "if r{dst} != {imm} goto +{off}", EXIT: "exit"}
    return [f"{i:3}: " + show[code].format(dst=dst, src=src, off=off, imm=imm)
            for i, (code, dst, src, off, imm) in enumerate(program)]


def attach(cgroup_dir: str, rules: list[dict]) -> None:
    """Load the program for `rules` and attach it to the v2 cgroup `cgroup_dir`."""
    prog_fd = linux.bpf_prog_load(linux.BPF_PROG_TYPE_CGROUP_DEVICE, encode(assemble(rules)), name="md_devices")
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            linux.bpf_prog_attach(dir_fd, prog_fd, linux.BPF_CGROUP_DEVICE, linux.BPF_F_ALLOW_MULTI)
        finally:
            os.close(dir_fd)
    finally:
        os.close(prog_fd)  # the cgroup keeps its own reference to the program
