"""The test harness shared by every chapter suite and by tests/ (used from conftest.py).

- Preconditions (`need`): skip with a hint on a learner's machine, fail under CI=true, where a
  skipped kernel test would hide a broken feature.
- The CLI runner: `python -m minidocker` from the implementation under test (the reference, or a
  student's copy given with --impl DIR / MINIDOCKER_IMPL=DIR).
- The leak check: what a test leaves on the host (mounts, md* links, netns, cgroups, iptables
  rules, processes) is reported as that test's failure, then cleaned so the next test starts clean.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = os.path.dirname(os.path.abspath(__file__))


def need(condition: bool, hint: str) -> None:
    """A precondition of a kernel test: skip with the hint, or fail in CI."""
    if not condition:
        (pytest.fail if IN_CI else pytest.skip)(f"needs {hint}")


def need_root() -> None:
    need(os.geteuid() == 0, "root: run `sudo make test` or `sudo .venv/bin/pytest ...`")


# ---------------------------------------------------------------------------------------------
# The CLI of the implementation under test

IMPL = REPO  # the directory that holds the `minidocker` package under test (set by conftest)


def cli_env() -> dict:
    """The environment that makes `python -m minidocker` import the implementation under test.

    PYTHONSAFEPATH: `python -m` would otherwise put the current directory first on sys.path,
    and from the repository's root that is the reference package, not a student's copy.
    """
    env = dict(os.environ, PYTHONPATH=IMPL, PYTHONSAFEPATH="1")
    # Cache bytecode, or each of the hundreds of CLI runs in a suite compiles the whole package
    # again (~20 ms each); but cache it outside the source tree, so that a root test run leaves
    # no root-owned __pycache__ in a student's lab (`lab grade` turns caching off for that).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "md-pycache")
    return env


def run_cli(*args, input=None, timeout=60, env=None, check=False, binary=False) -> subprocess.CompletedProcess:
    """`python -m minidocker ARGS` from the implementation under test; text (or bytes) in and out."""
    full_env = dict(cli_env(), **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "minidocker", *map(str, args)],
        input=input, capture_output=True, text=not binary, timeout=timeout, env=full_env,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"`minidocker {' '.join(map(str, args))}` exited {proc.returncode}:\n{proc.stderr}")
    return proc


def explain(out: subprocess.CompletedProcess) -> str:
    """For an assertion message: how a CLI run ended, with its stderr, which holds the reason
    (in a lab, the hint of the exercise that is not done yet)."""
    err = out.stderr.decode(errors="replace") if isinstance(out.stderr, bytes) else out.stderr
    words = [str(a) for a in out.args]
    words = words[words.index("minidocker") + 1:] if "minidocker" in words else words
    return f"[`minidocker {' '.join(words)}` exited {out.returncode}; stderr: {err.strip() or '(empty)'}]"


def popen_cli(*args, **kwargs) -> subprocess.Popen:
    """The CLI under test as a background process (for tests that kill it half-way)."""
    return subprocess.Popen([sys.executable, "-m", "minidocker", *map(str, args)], env=cli_env(), **kwargs)


NOBODY = 65534


def run_cli_as_nobody(*args, env=None) -> subprocess.CompletedProcess:
    """The CLI under test as the user nobody: cli.main(ARGS) in a forked child whose effective
    uid and gid are nobody's. (Its real uid stays 0: this is for checking refusals, not a jail.)

    A child of this process, not a new `python -m minidocker`: a checkout in a home directory
    that only its owner may enter (mode 750, as Ubuntu makes them) holds the venv's interpreter
    and the package, and nobody could start either. The child has both in memory already;
    every module of the package is imported before the uid is dropped, as a command imports
    some only when it runs.
    """
    import importlib
    import pkgutil

    import minidocker
    for module in pkgutil.walk_packages(minidocker.__path__, "minidocker.", onerror=lambda name: None):
        if not module.name.endswith("__main__"):  # __main__ would run the CLI
            try:
                importlib.import_module(module.name)
            except Exception:  # noqa: BLE001 - broken for root too: the command will say so
                pass
    from minidocker import cli

    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # files: no pipe to fill up
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            os.environ.update(env or {})
            os.setgroups([])
            os.setegid(NOBODY)  # the gid first: once the uid is not 0, it may not change the gid
            os.seteuid(NOBODY)
            code = cli.main([str(a) for a in args])
        except SystemExit as e:  # --help
            code = e.code or 0
        except BaseException as e:  # noqa: BLE001 - whatever happened, the parent must hear of it
            print(f"run_cli_as_nobody: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    return subprocess.CompletedProcess(["minidocker", *args], os.waitstatus_to_exitcode(status),
                                       out.read().decode(), err.read().decode())


def wait_until(condition, what: str, timeout: float = 10, interval: float = 0.05):
    """Poll `condition()` until it returns something true, and return that; fail after
    `timeout` seconds, naming <what> and the last result. A first start on a slow machine takes
    a while: wait for what a test needs, never a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what}; last seen: {result!r}", pytrace=False)
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# The leak check: a snapshot of what minidocker may leave on the host, taken before and after each
# test. Only things that belong to this test session count, so that two sessions can run at once.

def cgroup_roots() -> list[str]:
    """Every mounted cgroup hierarchy: /sys/fs/cgroup/<controller> on v1, /sys/fs/cgroup on v2.

    Read from the mount table here, not from minidocker.cgroups: the harness must not trust
    the code under test (a student's copy may not have it yet).
    """
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            if after.split(" ")[0] in ("cgroup", "cgroup2"):
                roots.append(before.split(" ")[4])
    return roots


def remove_cgroup(path: str) -> None:
    """rmdir a cgroup (children first is the caller's job), retrying a moment: a killed process
    leaves its cgroup a little after it dies."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _mounts(root: str) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    return {p for p in points if p.startswith(root)}


def _links() -> set[str]:
    return {name for name in os.listdir("/sys/class/net") if name.startswith("md")}


# Chapter 04's default bridge lives as long as the session (as docker0 lives with dockerd): named
# per session (`dockerd --bridge=NAME`), on a slice of the address pool of its own, so that two
# sessions on one machine never share a bridge or a subnet. Set by conftest (claim_network_slot).
SESSION_BRIDGE = ""
_slot_lock = None


def claim_network_slot() -> int:
    """One of 8 slots, held (flock) while this session lives: slot N is the bridge md0-tN and the
    pool 10.213.(128+16N).0/20. A bridge of our slot left by a killed session is ours to remove."""
    import fcntl
    global _slot_lock
    for n in range(8):
        f = open(os.path.join(tempfile.gettempdir(), f"md-test-netslot-{n}.lock"), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _slot_lock = f
        return n
    return os.getpid() % 8  # eight sessions at once: share a slot, as before


def _others_resources(own_root: str) -> tuple[set[str], set[str]]:
    """Bridges and container-id prefixes (9 hex, as in veth and rule names) recorded by OTHER
    stores on this machine: other sessions' roots (and roots inside them), a helper's /tmp/md-*
    root, the real /var/lib/minidocker. Their links and rules are not this session's leaks.
    A store writes its record before it makes the link, and removes the link before the record:
    a link seen both before and after these records were read has its record among them."""
    import glob
    import json
    tmp = tempfile.gettempdir()
    roots = [r for pattern in (f"{tmp}/md-*/", f"{tmp}/md-*/*/", "/var/lib/minidocker/") for r in glob.glob(pattern)
             if not r.startswith(own_root.rstrip("/") + "/")]
    bridges, containers = set(), set()
    for r in roots:
        for record in glob.glob(os.path.join(r, "networks", "*", "network.json")):
            try:
                with open(record) as f:
                    net = json.load(f)
                bridges.add((net.get("Options") or {}).get("com.docker.network.bridge.name") or f"mdbr-{net['Id'][:9]}")
            except (OSError, ValueError, KeyError):
                pass
        containers |= {os.path.basename(c)[:9] for c in glob.glob(os.path.join(r, "containers", "*"))}
    return bridges, containers


def _foreign(name: str, bridges: set[str], containers: set[str]) -> bool:
    if name == SESSION_BRIDGE:
        return True  # ours, but long-lived: not a test's leak (see SESSION_BRIDGE)
    if name == "md0" or (name.startswith("md0-t") and name != SESSION_BRIDGE):
        return True  # the real default bridge, or another session's
    return name in bridges or (name.startswith("mdv") and name[3:12] in containers)


def _netns() -> set[str]:
    """`ip netns` names starting with md, and the files of containers' namespaces that the
    engine keeps under $MINIDOCKER_RUNTIME_ROOT/netns (chapter 04: bind mounts of nsfs files)."""
    found = set()
    try:
        found = {n for n in os.listdir("/run/netns") if n.startswith("md")}
    except FileNotFoundError:
        pass
    ours = os.path.join(os.environ.get("MINIDOCKER_RUNTIME_ROOT", "/run/minidocker"), "netns")
    try:
        found |= {os.path.join(ours, n) for n in os.listdir(ours)}
    except FileNotFoundError:
        pass
    return found


def _cgroups(parent: str) -> set[str]:
    """Every cgroup directory below `parent` (e.g. "minidocker/t123") in every hierarchy."""
    found = set()
    for hierarchy in cgroup_roots():
        top = os.path.join(hierarchy, parent)
        for dirpath, dirnames, _ in os.walk(top):
            found.update(os.path.join(dirpath, d) for d in dirnames)
    return found


def _iptables() -> set[str]:
    try:
        out = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=10).stdout
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return set()
    found, table = set(), "filter"
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif "MINIDOCKER" in line and not line.startswith("#"):
            found.add(f"-t {table} {line}")  # "-t nat -A MINIDOCKER ...", "-t nat :MINIDOCKER - [0:0]"
    return found


def _rule_owners(line: str) -> list[str]:
    """The links a rule names (-i/-o BRIDGE), and "mdv<9 hex>" for a published port's rule
    (its comment "minidocker CID12 PID/START"): who the rule is for."""
    words = line.replace('"', "").split()
    owners = [words[i + 1].lstrip("!") for i, w in enumerate(words[:-1]) if w in ("-i", "-o") and words[i + 1].startswith("md")]
    if "minidocker" in words:
        owners.append("mdv" + words[words.index("minidocker") + 1][:9])
    return owners


def _own_rules(lines: set[str], bridges: set[str], containers: set[str]) -> set[str]:
    """This session's rules: those of its own links. The chains and the jumps into them are
    shared by every network: they count only when nothing else is left in them."""
    found = {line for line in lines if (o := _rule_owners(line)) and not all(_foreign(n, bridges, containers) for n in o)}
    structural = {line for line in lines if not _rule_owners(line)}
    return found | (structural if lines <= structural else set())


def _processes(marker: str) -> set[int]:
    """Processes started by this session: they carry MINIDOCKER_ROOT=<session root> in their
    environment (supervisors), or live in one of this session's cgroups (containers)."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker.encode() in f.read().split(b"\0"):
                    found.add(int(entry))
        except OSError:
            pass
    return found


def snapshot(root: str, cgroup_parent: str) -> dict[str, set]:
    procs = _processes(f"MINIDOCKER_ROOT={root}")
    for cg in _cgroups(cgroup_parent):
        try:
            with open(os.path.join(cg, "cgroup.procs")) as f:
                procs.update(int(p) for p in f.read().split())
        except OSError:
            pass
    # Links and rules as found: whose they are is asked in leaked(), only when they changed.
    return {
        "mounts": _mounts(root), "links": _links(), "netns": _netns(), "cgroups": _cgroups(cgroup_parent),
        "iptables": _iptables(), "processes": procs, "root": root,
    }


def remove_session_bridge() -> None:
    """At the session's end (and at its start, for a killed session's): the session's default
    bridge, the rules that name it, and our chains if nothing else uses them."""
    if not SESSION_BRIDGE:
        return
    subprocess.run(["ip", "link", "del", SESSION_BRIDGE], capture_output=True)
    lines = _iptables()
    mine = {line for line in lines if SESSION_BRIDGE in _rule_owners(line)}
    clean({"iptables": mine})
    rest = lines - mine
    if rest and all(not _rule_owners(line) for line in rest):  # only the chains and jumps are left
        clean({"iptables": rest})


def leaked(before: dict, after: dict) -> dict[str, set]:
    found = {kind: after[kind] - before[kind] for kind in ("mounts", "netns", "cgroups", "processes")}
    # Other stores' links and rules are not leaks. Reading their records takes a while (every
    # /tmp/md-* root): only when the links or rules changed during the test. Those still there
    # after the records were read are judged by them (see _others_resources).
    if after["links"] - before["links"] or after["iptables"] != before["iptables"]:
        bridges, containers = _others_resources(after["root"])
        links, rules = _links(), _iptables()
        found["links"] = {n for n in (after["links"] - before["links"]) & links if not _foreign(n, bridges, containers)}
        found["iptables"] = (_own_rules(after["iptables"], bridges, containers)
                             - _own_rules(before["iptables"], bridges, containers)) & rules
    return {kind: things for kind, things in found.items() if things}


def clean(leaks: dict[str, set]) -> None:
    """Remove what a test leaked, so that one leak fails one test, not every test after it."""
    for pid in leaks.get("processes", ()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for point in sorted(leaks.get("mounts", ()), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    for link in leaks.get("links", ()):
        subprocess.run(["ip", "link", "del", link], capture_output=True)
    for ns in leaks.get("netns", ()):
        if ns.startswith("/"):  # a container's namespace file: unmount, then remove
            subprocess.run(["umount", "-l", ns], capture_output=True)
            try:
                os.unlink(ns)
            except OSError:
                pass
        else:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    import shlex
    rules = leaks.get("iptables", ())
    for rule in sorted(rules, key=lambda r: "-A PREROUTING" not in r and "-A OUTPUT" not in r
                       and "-A POSTROUTING" not in r and "-A FORWARD" not in r):  # the jumps first
        words = shlex.split(rule)
        if words[2] == "-A":
            subprocess.run(["iptables", *words[:2], "-D", *words[3:]], capture_output=True)
    for rule in rules:  # then the chains, once nothing leads into them
        words = rule.split()
        if words[2].startswith(":"):
            subprocess.run(["iptables", *words[:2], "-X", words[2][1:]], capture_output=True)
    for cg in sorted(leaks.get("cgroups", ()), key=len, reverse=True):
        remove_cgroup(cg)
