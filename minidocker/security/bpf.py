"""Classic BPF: the little machine a seccomp filter runs on, an assembler for it, and a
disassembler that prints a filter in words.

A seccomp filter is a program for the kernel's classic BPF ("Berkeley Packet Filter", made in
1992 to pick network packets, reused for system calls in 2012). The kernel runs it on every
system call the process makes, before the call runs, with one input: a `struct seccomp_data`
(the call's number, the architecture, the six arguments). Its answer is the program's return
value: allow the call, fail it with an errno, kill the process... (see seccomp.py).

The machine is tiny, on purpose, so that the kernel can check a program before it loads it:
- one 32-bit accumulator, A (and a scratch register X that we do not need);
- instructions of 8 bytes: {u16 code, u8 jt, u8 jf, u32 k} (struct sock_filter);
- jumps go forward only, so every program ends: no loops. A conditional jump skips jt
  instructions when its test holds and jf when not, at most 255 either way; `ja` (jump always)
  takes its distance from k, 32 bits;
- at most 4096 instructions (BPF_MAXINSNS).

Labels let us write jumps by name; assemble() counts the distances. See
docs/08-hardening.md#seccomp.
"""

import collections
import struct

# Instruction classes and their fields, from <linux/bpf_common.h>.
BPF_LD, BPF_ALU, BPF_JMP, BPF_RET = 0x00, 0x04, 0x05, 0x06
BPF_W, BPF_ABS = 0x00, 0x20  # load a 32-bit Word from an ABSolute offset of the input
BPF_AND = 0x50
BPF_K = 0x00  # the operand is the constant k
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40

MAX_INSTRUCTIONS = 4096  # BPF_MAXINSNS: the kernel refuses a longer filter with EINVAL
MAX_JUMP = 255  # jt and jf are 8 bits

# struct seccomp_data, the filter's input (<linux/seccomp.h>): where each field starts.
SECCOMP_DATA_NR = 0  # int: the system call's number, as the architecture numbers them
SECCOMP_DATA_ARCH = 4  # u32: AUDIT_ARCH_*, which numbering (and calling convention) was used
SECCOMP_DATA_IP = 8  # u64: the instruction pointer
SECCOMP_DATA_ARGS = 16  # u64 args[6]


# struct sock_filter: code, jt, jf, k. jt/jf are distances once assembled; before, they may be
# Labels. (collections', not typing's NamedTuple: typing alone costs each container ~2 ms to import.)
Instruction = collections.namedtuple("Instruction", "code jt jf k")


class Label:
    """A place in a program that jumps may name; put the Label itself in the list where it is."""

    def __init__(self, name: str = ""):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name or 'label'}>"


def load(offset: int) -> Instruction:
    """A = the 32-bit word at `offset` of seccomp_data."""
    return Instruction(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset)


def and_(mask: int) -> Instruction:
    """A = A & mask."""
    return Instruction(BPF_ALU | BPF_AND | BPF_K, 0, 0, mask)


def jump(op: int, k: int, true: "Label | None" = None, false: "Label | None" = None) -> Instruction:
    """If A <op> k go to `true`, else to `false` (None: the next instruction). op is BPF_JEQ,
    BPF_JGT, BPF_JGE (unsigned comparisons) or BPF_JSET (A & k != 0)."""
    return Instruction(BPF_JMP | op | BPF_K, true or 0, false or 0, k)


def goto(label: Label) -> Instruction:
    """Jump always (ja): the one jump that goes farther than 255 instructions."""
    return Instruction(BPF_JMP | BPF_JA, 0, 0, label)  # k holds the label until assemble()


def ret(value: int) -> Instruction:
    """Stop, and answer `value` (seccomp: SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | errno, ...)."""
    return Instruction(BPF_RET | BPF_K, 0, 0, value)


def assemble(items: list) -> list[Instruction]:
    """Instructions and Labels in, instructions with every label replaced by its distance out.

    A distance counts from the instruction *after* the jump: 0 means "go on with the next".
    Raises ValueError for a jump backwards (BPF cannot), a conditional jump farther than 255
    (use goto) or a program longer than BPF_MAXINSNS.
    """
    where, position = {}, 0
    for item in items:  # pass 1: where each label is
        if isinstance(item, Label):
            where[item] = position
        else:
            position += 1
    program = []
    for item in items:  # pass 2: distances
        if isinstance(item, Label):
            continue
        here = len(program) + 1
        if item.code == BPF_JMP | BPF_JA and isinstance(item.k, Label):
            item = item._replace(k=_distance(where, item.k, here, 2**32 - 1))
        elif item.code & 0x07 == BPF_JMP:
            item = item._replace(jt=_distance(where, item.jt, here, MAX_JUMP),
                                 jf=_distance(where, item.jf, here, MAX_JUMP))
        program.append(item)
    if len(program) > MAX_INSTRUCTIONS:
        raise ValueError(f"a filter of {len(program)} instructions: the kernel takes at most {MAX_INSTRUCTIONS}")
    return program


def _distance(where: dict, target, here: int, limit: int) -> int:
    if not isinstance(target, Label):
        return target
    if target not in where:
        raise ValueError(f"jump to {target!r}, which is not in the program")
    distance = where[target] - here
    if not 0 <= distance <= limit:
        raise ValueError(f"jump to {target!r} is {distance} instructions away: BPF jumps 0..{limit} forward")
    return distance


def pack(program: list[Instruction]) -> bytes:
    """The program as the kernel reads it: an array of struct sock_filter, in native byte order."""
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


# ---------------------------------------------------------------------------------------------
# In words: what `seccomp-tools dump` or `bpf_dbg` would print, for the docs and for debugging

SECCOMP_DATA_FIELDS = {SECCOMP_DATA_NR: "nr", SECCOMP_DATA_ARCH: "arch",
                       SECCOMP_DATA_IP: "instruction_pointer", SECCOMP_DATA_IP + 4: "instruction_pointer >> 32",
                       **{SECCOMP_DATA_ARGS + 8 * i: f"args[{i}]" for i in range(6)},  # the low half (little-endian)
                       **{SECCOMP_DATA_ARGS + 8 * i + 4: f"args[{i}] >> 32" for i in range(6)}}
OPERATORS = {BPF_JEQ: "==", BPF_JGT: ">", BPF_JGE: ">=", BPF_JSET: "&"}


def disassemble(program: list[Instruction], returns=hex, constants=None) -> str:
    """One line per instruction: "0005: if (A == 83) goto 0006 else goto 0007  # mkdir".

    `returns` turns a return value into words (seccomp.py's action_name); `constants(field, k)`
    may name a compared value (a syscall's name when A holds nr, an AUDIT_ARCH_*)."""
    lines, field = [], None
    for index, (code, jt, jf, k) in enumerate(program):
        if code == BPF_LD | BPF_W | BPF_ABS:
            field = SECCOMP_DATA_FIELDS.get(k, f"data[{k}]")
            text = f"A = {field}"
        elif code == BPF_ALU | BPF_AND | BPF_K:
            text = f"A &= {k:#x}"
            field = None  # a masked value: no name fits it
        elif code == BPF_JMP | BPF_JA:
            text = f"goto {index + 1 + k:04d}"
        elif code & 0x07 == BPF_JMP:
            test = f"(A {OPERATORS[code & 0xF0]} {k if k < 4096 else hex(k)})"  # small: a syscall's number
            name = constants(field, k) if constants else None
            text = f"if {test} goto {index + 1 + jt:04d} else goto {index + 1 + jf:04d}"
            text += f"  # {name}" if name else ""
        elif code == BPF_RET | BPF_K:
            text = f"return {returns(k)}"
        else:
            text = f"code {code:#06x} jt {jt} jf {jf} k {k:#x}"
        lines.append(f"{index:04d}: {text}")
    return "\n".join(lines)
