"""`docker top`: a container's processes, as the host's `ps` shows them.

    top(ref, "-ef")    GET /containers/{id}/top?ps_args=-ef  -> {"Titles": [...], "Processes": [[...]]}

Docker does not look inside the container for this: it asks the runtime which pids are in the
container's cgroup, runs the host's own `ps` with the user's options, and keeps the lines whose
PID column is one of them. So the pids are the host's (PID 1 in the container is, say, 4242
here), and the user names come from the host's /etc/passwd, not the container's.
"""

import re
import subprocess

from minidocker.container.lifecycle import cgroup_of, find
from minidocker.errors import MinidockerError


# --8<-- [start:top]
def top(ref: str, ps_args: str = "") -> dict:
    ps_args = ps_args or "-ef"
    _check(ps_args)
    c = find(ref)
    if not c.state["Running"]:
        raise MinidockerError(f"container {c.id} is not running", "start it first")
    pids = cgroup_of(c).procs()  # every process in the cgroup: PID 1, its children, and execs
    args = ps_args.split(" ")
    # -q (quick pid mode) asks ps for just these pids; some options refuse it (the forest view
    # `f`, say), and then ps lists everything and we pick the lines ourselves, as Docker does.
    try:
        done = subprocess.run(["ps", *args, "-q" + ",".join(map(str, pids))], capture_output=True, text=True)
    except FileNotFoundError:  # a minimal system (debootstrap's minbase) has no procps
        raise MinidockerError("ps: not found on this host", "install it: apt-get install procps") from None
    if done.returncode != 0:
        done = subprocess.run(["ps", *args], capture_output=True, text=True)
        if done.returncode != 0:
            first_line = done.stderr.split("\n", 1)[0] or f"exit status {done.returncode}"
            raise MinidockerError(f"ps: {first_line}", "see `man ps` for its options")
    return parse_ps(done.stdout, set(pids))
# --8<-- [end:top]


def _check(ps_args: str) -> None:
    """`-o user=PID` would rename another column "PID" and fool the filter below: refused."""
    for name, value in re.findall(r"\s+(\S*)=\s*(PID\S*)", ps_args):
        if name != "pid":
            raise MinidockerError(f'specifying "{name}={value}" is not allowed',
                                  "only pid may be titled PID: -o pid=PID")


def parse_ps(output: str, pids: set[int]) -> dict:
    """ps's table as Titles and Processes, keeping the lines of `pids` (and the thread lines,
    PID "-", that follow one of them, as `ps -L` prints them)."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise MinidockerError("Couldn't find PID field in ps output", "keep pid among the columns: -o pid,comm")
    column = titles.index("PID")
    processes, keep_threads = [], False
    for line in lines[1:]:
        fields = _fields(line)
        if not fields:
            continue
        if fields[column] == "-":
            if keep_threads:
                processes.append(_fit(fields, len(titles)))
            continue
        try:
            pid = int(fields[column])
        except ValueError:
            raise MinidockerError(f"Unexpected pid '{fields[column]}'", "a PID column of numbers") from None
        keep_threads = pid in pids
        if keep_threads:
            processes.append(_fit(fields, len(titles)))
    return {"Titles": titles, "Processes": processes}


def _fields(line: str) -> list[str]:
    # ASCII blanks only, as Docker splits: a command may hold a no-break space of its own.
    return [field for field in re.split(r"[\t\n\f\r ]+", line) if field]


def _fit(fields: list[str], columns: int) -> list[str]:
    """The last column (CMD) may hold spaces: it takes all the words that are left."""
    return fields[:columns - 1] + [" ".join(fields[columns - 1:])]
