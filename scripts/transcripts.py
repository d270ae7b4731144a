"""The command output on the docs pages comes from real runs, never from typing it in.

`sudo make transcripts` runs each command that a page shows and writes what it printed to
docs/transcripts/NAME.txt; the page includes that file with a snippet (`--8<-- "docs/transcripts/
NAME.txt"`). tests/test_docs.py runs the same commands again and fails when a page's transcript no
longer matches, so a change of output cannot leave the docs behind.

Three things vary from run to run and are not drift: ids, pids and times (`comparable()` replaces
them by placeholders before two transcripts are compared), and where the run happened. The script
works in a temp dir, and shows it as the lab VM would: the temp dir as /tmp (so the rootfs is
/tmp/rootfs, as docs/01 builds it), the lab as /home/vagrant/lab, the checkout as /minidocker.
A few lines depend on the host rather than on the code (the cgroup layout, which of the paths a
container hides exist, the kernel). docs/transcripts/host.json records the host a transcript was
made on; on another host the check leaves those lines out (`Transcript.host_specific`).

`lab grade` takes a minute, too slow for the test: its results are kept in lab-grade.json, and the
test replays them through lab.py's own printing and checks that they name today's tests.

Usage: sudo .venv/bin/python scripts/transcripts.py [NAME ...]   (no NAME: all of them)
"""

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "transcripts"
sys.path.insert(0, str(REPO))  # the reference package, also when run as a plain script

from minidocker import lab, rootfs  # noqa: E402
from minidocker.container import oci_defaults  # noqa: E402

# How the pages show the places a run used (see the docstring), in the output and in commands.
LAB_SHOWN, TMP_SHOWN, REPO_SHOWN = "/home/vagrant/lab", "/tmp", "/minidocker"
ROOT_SHOWN, RUNTIME_ROOT_SHOWN = "/var/lib/minidocker", "/run/minidocker"  # the store's defaults
SHOWN_ARGS = {"repo": REPO_SHOWN, "tmp": TMP_SHOWN, "lab": "~/lab", "newlab": "~/lab", "attacks": "/var/tmp/md-attacks"}


@dataclasses.dataclass
class Step:
    """One command of a transcript: `$ PROG ARGS`, then what it printed (stdout and stderr)."""
    args: list[str]
    prog: str = "sudo .venv/bin/minidocker"  # how the page writes the command
    cwd: str = "{repo}"
    note: str = ""  # a comment after the command, for the reader
    keep: str = ""  # a regex: show only the lines that match (the page writes it as `| grep`)
    until: str = ""  # a regex: run again until the output matches (a condition, with a deadline)
    table: bool = False  # the output is a table padded to its widest cell (realign it after showing)
    timeout: int = 60
    exe: tuple[str, ...] = ()  # run this program instead of minidocker (`iptables`, `cat`)
    capture: str = ""  # a regex on the output: its named groups are {NAME}s in later steps' args and keep


class Session:
    """A temp dir with a busybox rootfs and a lab, a private state root and cgroup parent."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="md-docs-")
        # Under pytest, the session's cgroup parent, so that its leak check sees ours.
        self.own_parent = "MINIDOCKER_CGROUP_PARENT" not in os.environ
        self.parent = os.environ.get("MINIDOCKER_CGROUP_PARENT", f"minidocker/md-docs-{os.getpid()}")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("MINIDOCKER_") and k not in ("CI", "PYTEST_CURRENT_TEST")}
        # As the suites of chapters 01-03 run (STORE_ENV): no default bridge, no DNS forwarding.
        self.env |= STORE_ENV | {"PYTHONPATH": str(REPO), "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1",
                     "MINIDOCKER_ROOT": f"{self.tmp}/state", "MINIDOCKER_RUNTIME_ROOT": f"{self.tmp}/state/run",
                     "MINIDOCKER_CGROUP_PARENT": self.parent}
        self.places = {"repo": str(REPO), "tmp": self.tmp, "lab": f"{self.tmp}/lab", "newlab": f"{self.tmp}/new/lab"}
        self.extra_env, self.captured = {}, {}  # a transcript's own (Transcript.env, own_store)
        self.cli("rootfs", f"{self.tmp}/rootfs")
        self.cli("lab", "init", self.places["lab"])
        # An OCI bundle from `runc spec`, made as docs/01-isolation.md#the-runtime-on-its-own says.
        os.mkdir(f"{self.tmp}/bundle")
        subprocess.run(["runc", "spec"], cwd=f"{self.tmp}/bundle", check=True)
        config = json.loads(Path(self.tmp, "bundle", "config.json").read_text())
        config["root"]["path"] = f"{self.tmp}/rootfs"
        config["process"].update(terminal=False, args=["sleep", "1000"])
        Path(self.tmp, "bundle", "config.json").write_text(json.dumps(config, indent=2))

    def cli(self, *args: str, cwd: str | None = None, timeout: int = 60, exe: tuple[str, ...] = ()) -> str:
        # Output to a file, not a pipe: `runtime create` leaves a process that holds its stdout,
        # and reading a pipe to its end would wait for that process to exit.
        with tempfile.TemporaryFile("w+") as out:
            subprocess.run([*(exe or (sys.executable, "-m", "minidocker")), *args], cwd=cwd or REPO,
                           env=self.env | self.extra_env, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, timeout=timeout)
            out.seek(0)
            return out.read()

    @contextlib.contextmanager
    def using(self, env: dict[str, str]):
        """A transcript's own environment (and store) for its steps; what it captured is its own."""
        self.extra_env, self.captured = env, {}
        try:
            yield
        finally:
            self.extra_env, self.captured = {}, {}

    def run(self, step: Step) -> str:
        """The step as the page shows it: the command line, then its output."""
        args = [a.format(**self.places, **self.captured) for a in step.args]
        keep = step.keep.format(**self.captured) if self.captured else step.keep
        cwd, deadline = step.cwd.format(**self.places), time.monotonic() + 10
        out = self.cli(*args, cwd=cwd, timeout=step.timeout, exe=step.exe)
        while step.until and not re.search(step.until, out, re.M) and time.monotonic() < deadline:
            time.sleep(0.05)
            out = self.cli(*args, cwd=cwd, timeout=step.timeout, exe=step.exe)
        if step.capture:
            found = re.search(step.capture, out, re.M)
            assert found, f"`{' '.join(args)}` printed no match for {step.capture!r}:\n{out}"
            self.captured |= found.groupdict()
        lines = [line.rstrip() for line in out.splitlines()]
        if keep:
            lines = [line for line in lines if re.search(keep, line)]
        while lines and not lines[-1]:
            lines.pop()  # nslookup's blank lines at the end
        # Quoted as a shell needs it, but `~/lab` as typed: the shell expands it, sudo or not.
        shown_args = " ".join(a if re.fullmatch(r"~/[\w/.-]*", a) else shlex.quote(a)
                              for a in (a.format(**SHOWN_ARGS, **self.captured) for a in step.args))
        # --trace writes to stderr, and so does the docker CLI its errors: a filter of those lines
        # needs stderr in the pipe.
        to_stderr = "--trace" in step.args or "TRACE=" in step.prog or step.prog == "docker"
        pipe = " 2>&1 | grep -E" if to_stderr else " | grep -E"
        command = f"$ {step.prog} {shown_args}" + (f"{pipe} '{keep}'" if keep else "")
        shown = [self.shown(line) for line in lines]
        return "\n".join([command + (f"    # {step.note}" if step.note else ""),
                          *(realign(shown) if step.table else shown)])

    def shown(self, text: str) -> str:
        env = self.env | self.extra_env  # a store of the transcript's own, shown where sudo's is
        for real, shown in ((env["MINIDOCKER_RUNTIME_ROOT"], RUNTIME_ROOT_SHOWN), (env["MINIDOCKER_ROOT"], ROOT_SHOWN),
                            (self.places["newlab"], LAB_SHOWN), (self.places["lab"], LAB_SHOWN),
                            (self.tmp, TMP_SHOWN), (str(REPO), REPO_SHOWN), (f"/{self.parent}/", "/minidocker/")):
            text = text.replace(real, shown)
        return re.sub(r"/([0-9a-f]{12})[0-9a-f]{52}\b", r"/\1…", text)  # a container id in a path, shortened

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        for hierarchy in _cgroup_roots() if self.own_parent else ():  # the containers are gone: empty
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(hierarchy, self.parent))


def realign(rows: list[str]) -> list[str]:
    """A table padded as Go's tabwriter pads runc's: each column as wide as its widest cell plus 3,
    at least 12, the last one not padded. Showing a shorter path than the real one needs it."""
    cells = [re.split(r"\s{2,}", row.strip()) for row in rows]
    widths = [max(12, max(len(r[i]) for r in cells if len(r) > i) + 3) for i in range(max(map(len, cells)) - 1)]
    return ["".join(c.ljust(w) for c, w in zip(r, widths)) + (r[-1] if len(r) > len(widths) else "") for r in cells]


def _cgroup_roots() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.partition(" - ")[2].split(" ")[0] in ("cgroup", "cgroup2")]


# ---------------------------------------------------------------------------------------------
# The transcripts: what each page shows

@dataclasses.dataclass
class Transcript:
    name: str  # docs/transcripts/NAME.txt
    steps: list[Step] = dataclasses.field(default_factory=list)
    volatile: str = ""  # a regex whose first group varies between runs (beyond ids, pids, times)
    host_specific: str = ""  # a regex: lines that differ with the host, left out on another host
    by_process: bool = False  # lines of several processes ("[who] ..."), interleaved as they ran
    cleanup: list[list[str]] = dataclasses.field(default_factory=list)  # commands run afterwards
    made_by: object = None  # or a function(session) -> text, for what is not a command's output
    # Chapters 03-06: a store of its own, fresh (no image yet), torn down afterwards; and what it
    # needs before its first step: files (path under the temp dir -> text), commands not shown.
    own_store: bool = False
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    setup: list[list[str]] = dataclasses.field(default_factory=list)
    # Chapter 08: what the steps need on the host, and what they leave there (a program built with
    # gcc, a user the engine made): a function(session) -> context manager around the steps.
    around: object = None

    def record(self, session: Session) -> str:
        env = dict(self.env)
        if self.own_store:
            root = f"{session.tmp}/stores/{self.name}"
            shutil.rmtree(root, ignore_errors=True)
            env |= {"MINIDOCKER_ROOT": root, "MINIDOCKER_RUNTIME_ROOT": f"{root}/run"}
        with session.using(env), self.around(session) if self.around else contextlib.nullcontext():
            try:
                for path, text in self.files.items():
                    Path(session.tmp, path).parent.mkdir(parents=True, exist_ok=True)
                    Path(session.tmp, path).write_text(text)
                for args in self.setup:
                    session.cli(*[a.format(**session.places) for a in args])
                if self.made_by:
                    return self.made_by(session)
                return "\n".join(session.run(step) for step in self.steps)
            finally:
                for args in self.cleanup:
                    session.cli(*[a.format(**session.places) for a in args])
                if self.own_store:
                    teardown(session)
                shutil.rmtree(Path(session.places["newlab"]).parent, ignore_errors=True)  # lab-init's


def teardown(session: Session) -> None:
    """Whatever a transcript's own store still has that lives outside it: containers (processes,
    veths, DNAT rules), networks (bridges, rules) and volumes (a driver's mount)."""
    ids = session.cli("ps", "-aq").split()
    if ids:
        session.cli("rm", "-f", "-v", *ids)
    session.cli("network", "prune", "-f")
    session.cli("volume", "prune", "-a", "-f")


def md(*args, **kwargs) -> Step:
    return Step(list(args), **kwargs)


# The section that the exercise examples show (docs/teachers.md#markers, docs/labs.md#write).
EXAMPLE = "ex-01-proc"


def _exercise_source() -> tuple[str, str]:
    path = next(p for p in sorted((REPO / "minidocker").rglob("*.py")) if f"[start:{EXAMPLE}]" in p.read_text())
    return path.relative_to(REPO).as_posix(), path.read_text()


def _region(text: str, path: str, name: str = EXAMPLE) -> str:
    """The section with its marker lines, dedented, markers escaped (`;`) so that a snippet
    include shows them instead of treating them as a section of the transcript file."""
    lines = text.split("\n")
    section = next(s for s in lab.sections(text, path) if s.name == name)
    region = lines[section.start:section.end + 1]
    indent = min(len(line) - len(line.lstrip()) for line in region if line.strip())
    return "\n".join(re.sub(r"^(\s*#\s*)(-+8<-)", r"\1;\2", line[indent:]) for line in region)


def exercise_reference(session: Session) -> str:
    path, text = _exercise_source()
    return f"# {path}\n" + _region(text, path)


def exercise_blank(session: Session) -> str:
    path, text = _exercise_source()
    return f"# {path}, in a lab\n" + _region(lab.blank(text, lambda ex: ex.name == EXAMPLE, path=path), path)


def marker_error(session: Session) -> str:
    """What `lab init` says of an exercise whose hint was deleted: the real file and line."""
    path, text = _exercise_source()
    section = next(s for s in lab.sections(text, path) if s.name == EXAMPLE)
    lines = text.split("\n")
    del lines[section.start + 1:section.start + 1 + len(section.hint)]
    try:
        lab.sections("\n".join(lines), path)
    except lab.MinidockerError as e:
        return f"minidocker: {e}"
    raise AssertionError(f"lab.sections accepted {EXAMPLE} without its hint")


def exercise_docs(session: Session) -> str:
    """How docs/01-isolation.md presents the example exercise: its heading, and the collapsed
    reference solution that includes the code (the include escaped, so that it shows as text)."""
    page = (REPO / "docs" / "01-isolation.md").read_text().split("\n")
    heading = next(line for line in page if re.match(rf"#+ .*\{{#{EXAMPLE}\}}", line))
    include = next(i for i, line in enumerate(page) if line.strip().startswith("--8<--") and f":{EXAMPLE}\"" in line)
    start = max(i for i in range(include) if page[i].startswith("??? "))
    block = [re.sub(r"^(\s*)(-+8<-)", r"\1;\2", line) for line in page[start:include + 2]]
    return "\n".join([heading, "", "...", "", *block])


# Chapters 03-06 run as `dockerd --bridge=none` would (a container that names no network gets
# `none`: no default bridge stays behind), and their name responders never forward to the host's
# resolvers (a closed port on loopback), as in the test suites.
# Chapters 01-07 run the engine as it was before chapter 08's locks (MINIDOCKER_HARDENING=off, as
# their suites do: conftest.py); chapter 08's transcripts turn them on (HARDENED).
STORE_ENV = {"MINIDOCKER_BRIDGE": "none", "MINIDOCKER_DNS_UPSTREAM": "127.0.0.1:9", "MINIDOCKER_HARDENING": "off"}
BUSYBOX = ["run", "--rm", "busybox", "true"]  # setup: the embedded image, built before the steps
AGO = r"((?:Less than a second|About an? \w+|\d+ \w+) ago)"  # images' CREATED, history's
BUSYBOX_SIZE = r"\d(\.\d+)?MB\b"  # the host's busybox: its size, in images and history
EPHEMERAL = r'(?:0\.0\.0\.0:|"HostPort":"|--dport |[0-9a-f]{12} )(\d+(?:/\d+)?)'  # a port, a pid/start
HELLO = 'FROM busybox\nENV A=1\nRUN echo hi\nCMD ["sh"]\n'

HARDENED = {"MINIDOCKER_HARDENING": "on"}  # chapter 08's transcripts: the engine with its locks
REMAPPED = "sudo MINIDOCKER_USERNS_REMAP=default .venv/bin/minidocker"  # the daemonless CLI's switch
# The bounding set dropped one by one: as many lines as this kernel has capabilities, and the
# engine keeps none it lacks (this VM's root lacks CAP_SYS_RESOURCE).
CAPS_HOST = r"PR_CAPBSET_DROP|seccomp\(.*len="
# What the attacks meet depends on the kernel: whether it has /proc/kcore, /proc/sysrq-trigger and
# module support, which disk is 8:0, what the host's root directory holds, which capabilities its
# root has.
ATTACKS_HOST = r'"attack": "(load-module|read-block-device|read-kcore|write-sysrq-trigger|unshare-userns|shocker)"'
SMALL_PROFILE = """{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
              {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
               "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]}]}
"""
NOMKDIR_PROFILE = """{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
              {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}
"""


@contextlib.contextmanager
def attacks_built(session: Session):
    """chapters/08/attacks.c built static, as chapters/08/conftest.py builds it, at {attacks}: a
    directory on the disk (the temp dir), which the page shows as /var/tmp/md-attacks."""
    directory = Path(session.tmp, "md-attacks")
    directory.mkdir(exist_ok=True)
    subprocess.run(["gcc", "-static", "-O1", "-Wall", "-o", str(directory / "attacks"),
                    str(REPO / "chapters" / "08" / "attacks.c")], check=True, capture_output=True)
    session.places["attacks"] = str(directory)
    try:
        yield
    finally:
        del session.places["attacks"]
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def remap_user(session: Session):
    """The user mdremap and its /etc/subuid and /etc/subgid lines, which the engine makes for
    MINIDOCKER_USERNS_REMAP=default when they are missing: taken away afterwards if it made them
    (as chapters/08/test_userns.py does)."""
    import pwd

    def exists() -> bool:
        try:
            return bool(pwd.getpwnam("mdremap"))
        except KeyError:
            return False

    existed = exists()
    # The mapped root is nobody on the host: it must be able to pass through the temp dir (0700,
    # mkdtemp's) to the store, as through dockerd's root (0701).
    os.chmod(session.tmp, 0o701)
    try:
        yield
    finally:
        os.chmod(session.tmp, 0o700)
        if not existed and exists():
            for _ in range(20):  # shadow's tools lock /etc/passwd a moment
                if subprocess.run(["userdel", "mdremap"], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            for path in ("/etc/subuid", "/etc/subgid"):  # userdel keeps them on some shadow versions
                with contextlib.suppress(FileNotFoundError):
                    kept = [line for line in Path(path).read_text().splitlines(keepends=True)
                            if not line.startswith("mdremap:")]
                    Path(path).write_text("".join(kept))


# 09 runtime: minidocker-runc, runc's command line on minidocker's runtime, run by hand on the
# bundle and by a real dockerd (chapters/09/dockerd.py, as the chapter's tests start it).
RUNC_FACE = str(REPO / ".venv" / "bin" / "minidocker-runc")  # scripts/setup.sh installs it
RUNC_PROG = "sudo .venv/bin/minidocker-runc"
RUNC_ROOT = ["--root", "{tmp}/runc"]  # the shim's --root: runc's state dir, here in the temp dir
# What dockerd registers as the runtime `minidocker`: minidocker-runc, each call logged first.
RUNC_LOGGED = """#!/bin/sh
echo "$*" >> {log}
exec {runtime} "$@"
"""
# Debian's docker CLI, the client of the Debian dockerd that chapter 09 runs: a newer `docker` first
# on PATH (a static 28 on some machines) words the same errors differently.
DOCKER = {"exe": ("/usr/bin/docker",), "prog": "docker"}


@contextlib.contextmanager
def dockerd_running(session: Session):
    """A private dockerd (socket, data and exec roots, cgroup parent under the temp dir; no bridge,
    no iptables) with minidocker-runc, behind RUNC_LOGGED, registered as `minidocker`; busybox
    loaded from minidocker's own image; the steps' docker CLI pointed at it. All gone afterwards."""
    sys.path.insert(0, str(REPO / "chapters" / "09"))
    try:
        import dockerd
    finally:
        sys.path.remove(str(REPO / "chapters" / "09"))
    work = Path(session.tmp, "dockerd")
    work.mkdir()
    wrapper = work / "minidocker-logged"
    wrapper.write_text(RUNC_LOGGED.format(log=work / "calls.log", runtime=RUNC_FACE))
    wrapper.chmod(0o755)
    # As the chapter's fixture runs it (harness.cli_env): the shim's runtime calls from cached bytecode.
    env = {k: v for k, v in (session.env | session.extra_env).items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "md-pycache")
    engine = dockerd.Dockerd(str(work), runtimes={"minidocker": str(wrapper)}, env=env,
                             cgroup_parent=f"/{session.parent}/md-dockerd")
    try:
        engine.load_busybox()
        session.extra_env |= {"DOCKER_HOST": engine.host, "DOCKER_CONFIG": str(work / "docker-config")}
        yield
    finally:
        engine.close()
        shutil.rmtree(work, ignore_errors=True)


TRACE_HOST = r'/sys/fs/cgroup|mount\([^,]*, "/(proc|sys)/'  # cgroup files and mounts, masked paths

TRANSCRIPTS = [
    Transcript("doctor", [md("doctor")], volatile=r"^kernel\s+ok\s+(\S+)",
               host_specific=r"^(?:kernel|overlayfs|cgroups|ip|iptables)\s"),
    Transcript("trace", [md("--trace", "run", "--rm", "--pids-limit", "20", "--rootfs", "{tmp}/rootfs", "--", "true")],
               host_specific=TRACE_HOST, by_process=True),
    Transcript("runtime", [
        md("runtime", "create", "demo", prog="sudo minidocker", cwd="{tmp}/bundle",
           note="--bundle defaults to the current directory"),
        md("runtime", "state", "demo", prog="sudo minidocker"),
        md("runtime", "list", prog="sudo minidocker", table=True),
        md("runtime", "start", "demo", prog="sudo minidocker"),
        md("runtime", "state", "demo", prog="sudo minidocker", keep="status"),
        md("runtime", "kill", "demo", prog="sudo minidocker", note="SIGTERM, runc's default..."),
        md("runtime", "state", "demo", prog="sudo minidocker", keep="status"),
        md("runtime", "kill", "demo", "KILL", prog="sudo minidocker", note="...which PID 1 ignores without a handler"),
        md("runtime", "state", "demo", prog="sudo minidocker", keep="status|pid", until='"stopped"'),
        md("runtime", "delete", "demo", prog="sudo minidocker"),
    ], volatile=r"^demo\s+(\d+)", cleanup=[["runtime", "delete", "--force", "demo"]]),
    Transcript("zombie", [
        # The orphan lives a second: by then sh has become `sleep 60`, which never reaps it.
        # (An orphan that died while sh was still sh would be reaped by sh: no zombie to see.)
        md("run", "-d", "--name", "zombies", "--rootfs", "{tmp}/rootfs", "--", "sh", "-c", "(sleep 1 &); exec sleep 60",
           prog="sudo minidocker"),
        md("exec", "zombies", "ps", "-o", "pid,ppid,stat,comm", prog="sudo minidocker",
           note="a Z: the orphan nobody reaped", until=r"\bZ\b"),
        md("rm", "-f", "zombies", prog="sudo minidocker"),
    ], volatile=r"^\s*(\d+)\s+\d+\s+R\s+ps$", cleanup=[["rm", "-f", "zombies"]]),  # ps: 1 pid a try
    Transcript("diff", [
        md("run", "--rootfs", "{tmp}/rootfs:O", "--name", "demo", "--", "sh", "-c",
           "echo hi > /etc/new; echo x >> /etc/passwd; rm /bin/vi", prog="sudo minidocker"),
        md("diff", "demo", prog="sudo minidocker"),
        md("rm", "demo", prog="sudo minidocker"),
    ], cleanup=[["rm", "-f", "demo"]]),
    Transcript("lab-init", [md("lab", "init", "{newlab}", "--from-chapter", "1")]),
    Transcript("lab-status", [md("lab", "status", "{lab}", prog=".venv/bin/minidocker")]),
    Transcript("lab-not-a-lab", [md("lab", "status", "{lab}/minidocker", prog=".venv/bin/minidocker")]),
    Transcript("lab-exists", [md("lab", "init", "{lab}")]),
    Transcript("exercise-reference", made_by=exercise_reference),
    Transcript("exercise-blank", made_by=exercise_blank),
    Transcript("marker-error", made_by=marker_error),
    Transcript("exercise-docs", made_by=exercise_docs),
    *[dataclasses.replace(t, own_store=True, env=STORE_ENV | t.env) for t in [
        # 03 images. The busybox image is built from the host's /bin/busybox: its sizes (and its
        # file's date) are the host's.
        Transcript("run-image", [
            md("run", "--rm", "busybox", "echo", "hi", note="a fresh store: no image yet"),
            md("images"),
            md("create", "--name", "web", "busybox"),
            md("inspect", "-f", "{{{{.Image}}}} {{{{.Config.Image}}}}", "web"),
            md("inspect", "-f", "{{{{json .GraphDriver}}}}", "web"),
            md("rm", "web"),
        ], volatile=AGO, host_specific=BUSYBOX_SIZE),
        Transcript("image-names", [
            md("tag", "busybox", "mybox:1"),
            md("images", "--digests"),
            md("image", "inspect", "-f", "{{{{.Id}}}} {{{{.RepoTags}}}}", "mybox:1"),
            md("rmi", "mybox:1", note="one name of two: only untagged"),
        ], volatile=AGO, host_specific=BUSYBOX_SIZE, setup=[BUSYBOX]),
        Transcript("commit", [
            md("run", "--name", "web", "busybox", "sh", "-c", "echo hi > /index.html && rm /bin/vi"),
            md("commit", "-m", "add index", "-c", 'CMD ["cat", "/index.html"]', "web", "web:v1"),
            md("run", "--rm", "web:v1"),
            md("history", "web:v1"),
            md("rm", "web"),
        ], volatile=AGO, host_specific=BUSYBOX_SIZE, setup=[BUSYBOX]),
        Transcript("save-load", [
            md("save", "-o", "{tmp}/busybox.tar", "busybox"),
            md("rmi", "busybox"),
            md("load", "-i", "{tmp}/busybox.tar"),
            md("images", "-q", note="the same ID: the archive holds the very blobs"),
        ], setup=[BUSYBOX]),
        # 04 networks: user networks only (no default bridge to leave behind); the iptables lines
        # shown are those of this transcript's bridge and container, whatever else the host has.
        Transcript("network-rules", [
            md("network", "create", "web", capture=r"^(?P<net>[0-9a-f]{9})"),
            md("network", "inspect", "-f", "{{{{range .IPAM.Config}}}}{{{{.Subnet}}}} {{{{.Gateway}}}}{{{{end}}}}", "web"),
            md("-t", "nat", "-S", exe=("iptables",), prog="sudo iptables", keep="j MINIDOCKER|mdbr-{net}"),
            md("network", "rm", "web"),
            md("-t", "nat", "-S", exe=("iptables",), prog="sudo iptables", keep="mdbr-{net}",
               note="nothing left"),
        ]),
        Transcript("publish", [
            md("run", "-d", "--name", "web", "--network", "web", "-p", "80", "--expose", "443",
               "busybox", "httpd", "-f", "-p", "80", capture=r"^(?P<cid>[0-9a-f]{12})"),
            md("port", "web"),
            md("port", "web", "80"),
            md("inspect", "-f", "{{{{json .NetworkSettings.Ports}}}}", "web"),
            md("-t", "nat", "-S", "MINIDOCKER", exe=("iptables",), prog="sudo iptables", keep="{cid}"),
            md("rm", "-f", "web"),
        ], volatile=EPHEMERAL, setup=[BUSYBOX, ["network", "create", "web"]]),
        Transcript("isolation", [
            md("network", "create", "front", capture=r"^(?P<a>[0-9a-f]{9})"),
            md("network", "create", "back", capture=r"^(?P<b>[0-9a-f]{9})"),
            md("-S", exe=("iptables",), prog="sudo iptables", keep="ISOLATION.*(mdbr-{a}|mdbr-{b})"),
            md("network", "rm", "front", "back"),
        ]),
        Transcript("dns", [
            md("run", "-d", "--name", "db", "--network", "web", "busybox", "sleep", "300"),
            md("run", "--rm", "--network", "web", "busybox", "cat", "/etc/resolv.conf"),
            md("run", "--rm", "--network", "web", "busybox", "nslookup", "db"),
            md("run", "--rm", "--network", "web", "busybox", "nslookup", "nosuch",
               note="a bare name is the network's own: never forwarded"),
            md("rm", "-f", "db"),
        ], setup=[BUSYBOX, ["network", "create", "web"]]),
        # 05 volumes
        Transcript("volume-commands", [
            md("volume", "create", "--label", "tier=db", "data"),
            md("volume", "ls"),
            md("volume", "inspect", "data"),
            md("volume", "rm", "data"),
        ]),
        Transcript("volume-persist", [
            md("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f"),
            md("run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f", note="another container, the same data"),
            md("run", "-d", "--name", "web", "-v", "data:/data", "busybox", "sleep", "300"),
            md("volume", "rm", "data"),
            md("rm", "-f", "web"),
            md("volume", "rm", "data"),
        ], setup=[BUSYBOX]),
        Transcript("volume-symlink", [
            md("run", "--rm", "-v", "data:/v", "busybox", "touch", "/v/from-the-volume"),
            md("run", "--name", "evil", "busybox", "ln", "-s", "/etc", "/data"),
            md("commit", "evil", "evil", note="an image whose /data is a symlink to /etc"),
            md("run", "--rm", "-v", "data:/data", "evil", "sh", "-c", "readlink /data; ls /etc"),
            md("/etc/from-the-volume", exe=("ls",), prog="ls", note="the host's /etc: untouched"),
            md("rm", "evil"),
        ], setup=[BUSYBOX]),
        # 06 build
        Transcript("build", [
            md("Dockerfile", exe=("cat",), prog="cat", cwd="{tmp}/hello"),
            md("build", "-t", "hello", ".", cwd="{tmp}/hello"),
        ], files={"hello/Dockerfile": HELLO}, setup=[BUSYBOX]),
        Transcript("build-cache", [
            md("build", "-t", "hello", ".", cwd="{tmp}/hello", note="the same again"),
            md("-i", "s/A=1/A=2/", "Dockerfile", exe=("sed",), prog="sed", cwd="{tmp}/hello"),
            md("build", "-t", "hello", ".", cwd="{tmp}/hello", note="step 2 changed: a miss from there on"),
        ], files={"hello/Dockerfile": HELLO}, setup=[BUSYBOX, ["build", "-q", "-t", "hello", "{tmp}/hello"]]),
    ]],
    # 08 hardening: the locks on (HARDENED), each transcript in a store of its own.
    *[dataclasses.replace(t, own_store=True, env=STORE_ENV | HARDENED | t.env) for t in [
        Transcript("caps-status", [md("run", "--rm", "busybox", "grep", "Cap", "/proc/self/status")],
                   setup=[BUSYBOX], host_specific=r"^Cap(Prm|Eff|Bnd):"),  # Docker's 14, unless the host lacks one
        Transcript("caps-unknown", [md("run", "--rm", "--cap-add", "foo", "busybox", "true")], setup=[BUSYBOX]),
        Transcript("caps-trace", [
            md("--trace", "run", "--rm", "--cap-drop", "ALL", "--cap-add", "KILL", "busybox", "true",
               keep=r"prctl|capset|seccomp\("),
        ], host_specific=CAPS_HOST, setup=[BUSYBOX]),
        Transcript("caps-stop", [
            md("run", "--rm", "--network", "none", "busybox", "ip", "link", "add", "mda", "type", "veth",
               "peer", "name", "mdb"),
            md("run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "add", "mda",
               "type", "veth", "peer", "name", "mdb", note="no output: it worked, in the container's netns"),
            md("run", "--rm", "--cap-drop", "ALL", "busybox", "chown", "1", "/tmp"),
        ], setup=[BUSYBOX]),
        Transcript("seccomp-default", [
            md("run", "--rm", "busybox", "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true"),
            md("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
               "grep Seccomp: /proc/self/status; unshare -U true && echo new user namespace"),
        ], setup=[BUSYBOX]),
        Transcript("seccomp-show", [
            md("{tmp}/small.json", exe=("cat",), prog="cat"),
            md("-c", 'from minidocker.security import seccomp; print(seccomp.show("{tmp}/small.json"))',
               exe=(sys.executable,), prog="python3"),
        ], files={"small.json": SMALL_PROFILE}),
        Transcript("seccomp-trace", [
            md("--trace", "run", "--rm", "busybox", "true", keep=r"seccomp\(|PR_SET_KEEPCAPS|capset"),
        ], setup=[BUSYBOX]),
        Transcript("seccomp-errors", [
            md("run", "--security-opt", "seccomp", "busybox", "true"),
            md("run", "--security-opt", "seccomp=/nonexist", "busybox", "true"),
            md("run", "--security-opt", "seccomp={tmp}/bad.json", "busybox", "true"),
            md("run", "--security-opt", "foo=bar", "busybox", "true"),
            md("run", "--security-opt", "seccomp={tmp}/odd.json", "busybox", "true",
               note='{"defaultAction": "SCMP_ACT_FOO"}'),
        ], files={"bad.json": "{bad\n", "odd.json": '{"defaultAction": "SCMP_ACT_FOO"}\n'}, setup=[BUSYBOX]),
        Transcript("seccomp-profile", [
            md("{tmp}/nomkdir.json", exe=("cat",), prog="cat"),
            md("run", "--rm", "--security-opt", "seccomp={tmp}/nomkdir.json", "busybox", "sh", "-c",
               "mkdir /x; rmdir /tmp"),
        ], files={"nomkdir.json": NOMKDIR_PROFILE}, setup=[BUSYBOX]),
        Transcript("devices-mknod", [
            md("run", "--rm", "busybox", "sh", "-c", "mknod /dev/sda b 8 0 && head -c1 /dev/sda"),
        ], setup=[BUSYBOX]),
        Transcript("devices-device", [
            md("run", "--rm", "--device", "/dev/fuse:/dev/fuse:r", "busybox", "sh", "-c",
               "ls -l /dev/fuse; (exec 3</dev/fuse) && echo read-ok; exec 4>/dev/fuse"),
            md("run", "--device", "/dev/nope", "busybox", "true", note="exit status 125, nothing made"),
        ], volatile=r"\d+, +\d+ (\w{3} +\d+ +[\d:]+) /dev/fuse", setup=[BUSYBOX]),  # the host node's date
        Transcript("userns-map", [
            md("run", "--rm", "--network", "none", "busybox", "cat", "/proc/self/uid_map", prog=REMAPPED),
            md("run", "--privileged", "busybox", "true", prog=REMAPPED),
            md("run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map", prog=REMAPPED,
               note="this container opts out"),
        ], env={"MINIDOCKER_USERNS_REMAP": "default"}, around=remap_user, setup=[BUSYBOX],
            host_specific=r"^\s+0\s+\d+\s+65536$"),  # mdremap's range: the first free one on the host
        Transcript("userns-trace", [
            md("--trace", "run", "--rm", "--network", "none", "busybox", "true", prog=REMAPPED,
               keep=r"unshare\(|_map|clone\(CLONE_PARENT"),
        ], env={"MINIDOCKER_USERNS_REMAP": "default"}, around=remap_user, setup=[BUSYBOX],
            host_specific=r'_map", "0 \d+ 65536"', by_process=True,
            volatile=r"(?:\[stage-1 |/proc/|= )(\d+)"),  # stage 1's pid, and its child's
        Transcript("exeseal-trace", [
            md("run", "--rm", "busybox", "true", prog="sudo MINIDOCKER_TRACE=1 .venv/bin/minidocker",
               keep=r'fsopen|fsconfig|fsmount|execveat'),
        ], env={"MINIDOCKER_TRACE": "1"}, setup=[BUSYBOX],
            volatile=r'(?:"lowerdir", ")([^"]*)'),  # where the venv and the runtime's state are
        Transcript("attacks", [
            md("run", "--rm", "-v", "{attacks}:/md-attacks:ro", "busybox", "/md-attacks/attacks"),
        ], around=attacks_built, host_specific=ATTACKS_HOST, setup=[BUSYBOX]),
        Transcript("attacks-privileged", [
            md("run", "--rm", "--privileged", "-v", "{attacks}:/md-attacks:ro", "busybox", "/md-attacks/attacks"),
        # The shocker's answer depends on the filesystem the attacks' directory is on (inode 2 is the
        # root of ext4, not of every filesystem: ESTALE elsewhere); that it got through is what counts.
        ], around=attacks_built, host_specific=ATTACKS_HOST, volatile=r'"attack": "shocker", "ok": true, (.*)\}',
            setup=[BUSYBOX]),
    ]],
    # 09 runtime: the runc face by hand, on the bundle of chapter 01's `runtime` transcript...
    Transcript("runc-version", [
        md("--version", exe=(RUNC_FACE,), prog=".venv/bin/minidocker-runc"),
        md("features", exe=(RUNC_FACE,), prog=".venv/bin/minidocker-runc", keep="ociVersion"),
    ], volatile=r"^python: (\S+)"),
    Transcript("runc-face", [
        md(*RUNC_ROOT, "--log", "{tmp}/log.json", "--log-format", "json", "create", "--bundle", "{tmp}/bundle",
           "--pid-file", "{tmp}/init.pid", "demo", exe=(RUNC_FACE,), prog=RUNC_PROG),
        md("{tmp}/init.pid", exe=("cat",), prog="cat"),
        md(*RUNC_ROOT, "state", "demo", exe=(RUNC_FACE,), prog=RUNC_PROG, keep="status"),
        md(*RUNC_ROOT, "start", "demo", exe=(RUNC_FACE,), prog=RUNC_PROG),
        md(*RUNC_ROOT, "kill", "demo", "9", exe=(RUNC_FACE,), prog=RUNC_PROG),
        md(*RUNC_ROOT, "state", "demo", exe=(RUNC_FACE,), prog=RUNC_PROG, keep="status", until='"stopped"'),
        md(*RUNC_ROOT, "delete", "demo", exe=(RUNC_FACE,), prog=RUNC_PROG),
        md(*RUNC_ROOT, "--log", "{tmp}/log.json", "--log-format", "json", "delete", "demo", exe=(RUNC_FACE,),
           prog=RUNC_PROG, note="again: exit status 1"),
        md("{tmp}/log.json", exe=("cat",), prog="cat"),
    ], volatile=r"^(\d+)$", cleanup=[["runtime", "--root", "{tmp}/runc", "delete", "--force", "demo"]]),
    # ... and under a real dockerd: what its shim runs for one `docker run`, and an error on its way back.
    Transcript("docker-trace", [
        md("{tmp}/dockerd/minidocker-logged", exe=("cat",), prog="cat"),
        md("info", "-f", "{{{{json .Runtimes}}}}", **DOCKER),
        md("run", "--rm", "--runtime", "minidocker", "busybox", "echo", "hi", **DOCKER),
        md("{tmp}/dockerd/calls.log", exe=("cat",), prog="cat", until="delete --force"),
    ], around=dockerd_running, volatile=r"/tmp/runc-process(\d+)"),
    Transcript("docker-errors", [
        md("run", "--rm", "--runtime", "minidocker", "busybox", "md-no-such-command", **DOCKER,
           note="exit status 127", keep="^docker: "),
        md("run", "--rm", "--runtime", "runc", "busybox", "md-no-such-command", **DOCKER, note="runc's words",
           keep="^docker: "),
    ], around=dockerd_running),
]
BY_NAME = {t.name: t for t in TRANSCRIPTS}
GRADE = "lab-grade"  # recorded by record_grade(), checked by replaying lab-grade.json


# ---------------------------------------------------------------------------------------------
# Comparing: what may differ between two runs of the same code

def host() -> dict:
    """What makes a transcript differ between machines that run the same code: the cgroup mounts
    (v1, hybrid or v2), which of the paths a container hides this kernel has, and where the tools
    are; and the busybox that the embedded image is made of (its size, its date)."""
    import hashlib

    hidden = oci_defaults.MASKED_PATHS + oci_defaults.READONLY_PATHS
    busybox = Path(rootfs.BUSYBOX)
    return {"cgroups": sorted(_cgroup_roots()), "paths": [p for p in hidden if os.path.exists(p)],
            "tools": [shutil.which(t) for t in ("ip", "iptables")],
            "busybox": hashlib.sha256(busybox.read_bytes()).hexdigest() if busybox.exists() else None}


def comparable(transcript: Transcript, text: str, same_host: bool = True) -> list[str]:
    """The lines of a transcript with what varies between runs replaced by placeholders."""
    lines = []
    for line in text.splitlines():
        if not same_host and transcript.host_specific and re.search(transcript.host_specific, line):
            continue
        if transcript.volatile:
            line = re.sub(transcript.volatile, lambda m: m[0].replace(m[1], "<v>"), line)
        line = re.sub(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}(…|\b)", "<id>", line)
        line = re.sub(r"\bmdbr-[0-9a-f]{9}\b", "mdbr-<id>", line)  # a network's bridge: its id's
        line = re.sub(r"\b10\.213\.\d+\.", "10.213.<n>.", line)  # the first /24 of the pool that is free
        line = re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)?", "<time>", line)
        line = re.sub(r"(\[minidocker |host |\"pid\": )\d+", r"\1<pid>", line)
        line = re.sub(r"(\w+):\[\d+\]", r"\1:[<inode>]", line)  # a namespace, as setns names it
        lines.append(" ".join(line.split()))  # a table's padding follows its widest cell
    if transcript.by_process:
        # The engine and the container's PID 1 trace at the same time, and their lines interleave
        # as the scheduler pleases; each one's own order is fixed. Compare process by process
        # (sort() is stable: it keeps each one's lines in their order).
        lines.sort(key=lambda line: line.split("]", 1)[0])
    return lines


def check(transcript: Transcript, session: Session) -> list[str]:
    """The differences between the page's transcript and a new run (an empty list: it matches)."""
    import difflib

    path = OUT / f"{transcript.name}.txt"
    if not path.exists():
        return [f"{path.relative_to(REPO)} is missing"]
    recorded = json.loads((OUT / "host.json").read_text())
    same = recorded == host()
    old = comparable(transcript, path.read_text(), same)
    new = comparable(transcript, transcript.record(session), same)
    return list(difflib.unified_diff(old, new, "on the page", "printed now", lineterm="", n=1))


# ---------------------------------------------------------------------------------------------
# lab grade: recorded once, replayed by the test

GRADE_STEP = md("lab", "grade", "{lab}", timeout=1800)


def record_grade(session: Session) -> tuple[str, dict]:
    """A real `lab grade` of a fresh lab: the page's table, and each test's outcome for the replay
    (test id, outcome, and the first line of a failure's message)."""
    text = session.run(GRADE_STEP)
    report = json.loads(Path(session.places["lab"], lab.REPORT).read_text())
    def first_line(t):  # enough for the table, which shows 100 characters of it
        return (t["message"].splitlines() or [""])[0][:160] if t["outcome"] == "failed" else ""
    tests = {c["chapter"]: [[t["test"], t["outcome"], first_line(t)] for t in c["tests"]] for c in report["chapters"]}
    return text, tests


def dump_grade(tests: dict) -> str:
    """lab-grade.json with one test a line, so that a new run's diff shows which tests changed."""
    chapters = [f"  {json.dumps(ch)}: [\n" + ",\n".join(f"    {json.dumps(t, ensure_ascii=False)}" for t in rows)
                + "\n  ]" for ch, rows in tests.items()]
    return "{\n" + ",\n".join(chapters) + "\n}\n"


def check_grade(session: Session) -> list[str]:
    """What no longer matches in the `lab grade` transcript, without a minute of grading:
    - the recorded results name exactly the tests that the chapters' suites have today;
    - lab.py's own grade() and cmd_grade(), fed those results, print the table on the page;
    - each exercise message that a first failure quotes is what the exercise says today."""
    import difflib
    import xml.etree.ElementTree as ET
    from types import SimpleNamespace
    from unittest import mock

    tests = json.loads((OUT / f"{GRADE}.json").read_text())
    problems = []
    collected = collect()
    same_host = json.loads((OUT / "host.json").read_text()) == host()

    def test_id(test: str) -> str:
        # Chapter 01 runs its cgroup tests once per driver the host has: [v1] and [v2] here, [v2]
        # alone on a pure-v2 host. On another host than the transcript's, compare them driverless.
        return test if same_host else re.sub(r"\[v[12]\b-?", "[", test)

    for chapter in sorted(set(tests) | set(collected)):
        had = [test_id(t[0]) for t in tests.get(chapter, [])]
        has = [test_id(t) for t in collected.get(chapter, [])]
        for gone in sorted(set(had) - set(has)):
            problems.append(f"chapters/{chapter}: the transcript counts {gone}, which no longer exists")
        for new in sorted(set(has) - set(had)):
            problems.append(f"chapters/{chapter}: {new} is new, and the transcript does not count it")

    def run_chapter(chapter, impl, junitxml, **_):  # the recorded results, as pytest's JUnit XML
        suite = ET.Element("testsuite")
        for test, outcome, message in tests[chapter.name]:
            module, *rest = test.split("::")
            classname = ".".join(["chapters", chapter.name, module.removesuffix(".py"), *rest[:-1]])
            case = ET.SubElement(suite, "testcase", classname=classname, name=rest[-1])
            if outcome != "passed":
                ET.SubElement(case, "failure" if outcome == "failed" else "skipped", message=message)
        ET.ElementTree(suite).write(junitxml.removeprefix("--junitxml="))
        return subprocess.CompletedProcess([], 0 if all(t[1] != "failed" for t in tests[chapter.name]) else 1)

    printed = []
    with mock.patch.object(lab, "chapters", lambda _lab: [REPO / "chapters" / ch for ch in tests]), \
            mock.patch.object(lab, "run_chapter", run_chapter), \
            mock.patch.object(lab, "print", lambda *a, **_: printed.append(" ".join(map(str, a))), create=True):
        lab.cmd_grade(SimpleNamespace(dir=session.places["lab"], json=None, junit=None))
    args = " ".join(GRADE_STEP.args).format(**SHOWN_ARGS)
    replayed = "\n".join([f"$ {GRADE_STEP.prog} {args}", *(session.shown(line.rstrip()) for line in printed)])
    grade = Transcript(GRADE)
    problems += difflib.unified_diff(comparable(grade, (OUT / f"{GRADE}.txt").read_text()),
                                     comparable(grade, replayed), "on the page", "printed now", lineterm="", n=1)
    messages = current_messages()
    for chapter, rows in tests.items():
        for test, _, message in rows:
            # A message that went through repr() once or twice quotes the hint's `"` as `\"`, `\\"`
            # (chapter 09's log-line hint: {"level", "msg", "time"}).
            quoted = re.search(r"exercise (\d\d) (\S+): .*", re.sub(r'\\+"', '"', message))
            if quoted and not messages.get((quoted[1], quoted[2]), "").startswith(quoted[0]):
                problems.append(f"{test}: quotes `{quoted[0]}`, but today the exercise says "
                                f"`{messages.get((quoted[1], quoted[2]), '(no such exercise)')}`")
    return problems


def collect() -> dict[str, list[str]]:
    """The test ids of each chapter's suite today, as `lab grade` names them."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "chapters"],
                         cwd=REPO, capture_output=True, text=True, timeout=120).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"chapters/(\d\d)/(\S.*)$", line)
        if m:
            found.setdefault(m[1], []).append(m[2])
    return found


def current_messages() -> dict[tuple[str, str], str]:
    """What each exercise's blank raises today: {(chapter, short name): message}."""
    found = {}
    for path in sorted((REPO / "minidocker").rglob("*.py")):
        for ex in lab.sections(path.read_text(), path.relative_to(REPO).as_posix()):
            if ex.chapter is not None:
                found[(f"{ex.chapter:02d}", ex.short)] = lab.message(ex, lab.docs_page(ex.chapter))
    return found


def write(name: str, text: str) -> bool:
    """Write docs/transcripts/NAME.txt unless it already matches: no change of pids for nothing."""
    path = OUT / f"{name}.txt"
    transcript = BY_NAME.get(name, Transcript(name))
    if path.exists() and comparable(transcript, path.read_text()) == comparable(transcript, text):
        return False
    path.write_text(text.rstrip("\n") + "\n")
    return True


def main(names: list[str]) -> int:
    if os.geteuid() != 0:
        print("transcripts: run me as root (sudo make transcripts): the commands start containers", file=sys.stderr)
        return 1
    unknown = set(names) - set(BY_NAME) - {GRADE}
    if unknown:
        print(f"transcripts: no transcript {', '.join(sorted(unknown))} (known: {', '.join([*BY_NAME, GRADE])})",
              file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "host.json").write_text(json.dumps(host(), indent=2) + "\n")
    session = Session()
    try:
        for transcript in TRANSCRIPTS:
            if not names or transcript.name in names:
                changed = write(transcript.name, transcript.record(session))
                print(f"{'wrote' if changed else 'same '} docs/transcripts/{transcript.name}.txt")
        if not names or GRADE in names:
            print("running lab grade on a fresh lab (about a minute)...", flush=True)
            text, tests = record_grade(session)
            write(GRADE, text)
            (OUT / f"{GRADE}.json").write_text(dump_grade(tests))
            print(f"wrote docs/transcripts/{GRADE}.txt and {GRADE}.json")
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
