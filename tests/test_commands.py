"""`ps`, `stats`, `top` and `inspect -f` print what the real docker CLI prints for the same engine
answer; `version` claims no API.

The docker CLI does the formatting itself, so a replay engine (docker_cli_replay.py) serves it
an answer, minidocker's CLI gets the same answer from its (patched) engine functions, and the
two outputs must be equal, byte for byte. The real-container side is chapters/01/test_commands.py.
"""

import contextlib
import importlib
import io
import os
import select
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker import cli
from minidocker.container import lifecycle, stats as engine_stats

docker_cli = importlib.import_module("tests.docker_cli")
Replay = importlib.import_module("tests.docker_cli_replay").Replay


@pytest.fixture(scope="module")
def docker():
    # The tables follow the docker CLI of today (23 and newer); Debian 12's docker.io is 20.10,
    # which pads wide (CJK) characters differently: its rendering is not the one to compare with.
    harness.need(docker_cli.docker_available(23), "a docker CLI 23 or newer (no daemon), to compare the tables with")
    routes = {}
    with Replay(routes) as engine:
        def run(answers: dict, *argv: str) -> str:
            routes.clear()
            routes.update(answers)
            done = engine.docker(*argv)
            assert done.returncode == 0, done.stderr
            return done.stdout
        yield run


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")  # ps's CreatedAt is local time, on both sides
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def ours(*argv: str) -> str:
    """minidocker's command line, in this process, with its output captured."""
    args = cli.build_parser(argv[0]).parse_args(list(argv))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return out.getvalue()


# Text a command line may hold: quotes, backslashes, a tab, wide CJK characters, an accent.
words = st.text(st.sampled_from(list("ab -_\"'\\\t\n中文é/:")), max_size=30)
ids = st.text("0123456789abcdef", min_size=64, max_size=64)
names = st.from_regex(r"[a-z][a-z0-9_.-]{1,24}", fullmatch=True)


@st.composite
def summaries(draw):
    """A container as GET /containers/json shows it; created half-past some hour ago, so that
    "3 hours ago" is the same on both sides even when a second passes between them."""
    return {"Id": draw(ids), "Names": ["/" + draw(names)], "Image": draw(st.sampled_from(["/srv/rootfs", "", "/tmp/中文"])),
            "Command": draw(words), "Created": int(time.time()) - draw(st.integers(0, 2000)) * 3600 - 1800,
            "State": draw(st.sampled_from(["running", "paused", "exited", "created"])),
            "Status": draw(st.sampled_from(["Up 3 hours", "Up 2 minutes (Paused)", "Exited (137) 5 days ago", "Created"])),
            "Ports": [], "Labels": {}, "Mounts": [], "NetworkSettings": {"Networks": {"none": {}}}}


PS_FLAGS = [[], ["-a"], ["--no-trunc"], ["-q"], ["-a", "-q", "--no-trunc"],
            ["--format", "table {{.ID}}\\t{{.Command}}\\t{{.Names}}\\t{{.Networks}}"],
            ["--format", "{{.Names}}: {{.Status}} ({{.State}}) {{.Image}}"],
            ["--format", "table {{.CreatedAt}}\\t{{.RunningFor}}\\t{{upper .Names}}"]]


@settings(max_examples=40)
@given(st.lists(summaries(), max_size=3), st.sampled_from(PS_FLAGS))
def test_ps_prints_what_docker_prints(docker, monkeypatch, containers, flags):
    monkeypatch.setattr("minidocker.container.inspect.list_containers", lambda all=False: containers)
    assert ours("ps", *flags) == docker({"/containers/json": containers}, "ps", *flags)


@st.composite
def stats_answers(draw):
    """GET /containers/{id}/stats?stream=false: two CPU samples, memory, pids, and I/O."""
    def cpu(total, system):
        return {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system, "online_cpus": cpus}

    cpus, big = draw(st.integers(1, 64)), st.integers(0, 2**62)
    before, spent, system, elapsed = draw(big), draw(st.integers(0, 10**10)), draw(big), draw(st.integers(0, 10**11))
    usage = draw(st.integers(0, 2**40))
    io_entries = draw(st.lists(st.fixed_dictionaries({"major": st.just(8), "minor": st.just(0),
                                                      "op": st.sampled_from(["read", "write", "Read", "sync"]),
                                                      "value": st.integers(0, 10**13)}), max_size=3))
    return {"id": draw(ids), "name": "/" + draw(names), "read": "2025-01-01T00:00:01Z",
            "preread": "2025-01-01T00:00:00Z", "pids_stats": {"current": draw(st.integers(0, 10**5))},
            "cpu_stats": cpu(before + spent, system + elapsed), "precpu_stats": cpu(before, system),
            "memory_stats": {"usage": usage, "limit": draw(st.integers(0, 2**40)),
                             "stats": {"inactive_file": draw(st.integers(0, 2**41))}},
            "blkio_stats": {"io_service_bytes_recursive": io_entries or None},
            "networks": draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["eth0", "eth1"]), st.fixed_dictionaries(
                {"rx_bytes": st.integers(0, 10**15), "tx_bytes": st.integers(0, 10**15)}), max_size=2)))}


class Stub:
    """What `lifecycle.find` gives the stats command: only the id is looked at."""

    def __init__(self, id: str):
        self.id, self.state = id, {"Running": True}


@settings(max_examples=12)  # the docker CLI takes half a second for each `stats --no-stream`
@given(stats_answers(), st.sampled_from([[], ["--no-trunc"], ["--format", "{{.Container}} {{.CPUPerc}} {{.MemPerc}}"],
                                         ["--format", "table {{.Name}}\\t{{.MemUsage}}\\t{{.NetIO}}\\t{{.BlockIO}}"]]))
def test_stats_prints_what_docker_prints(docker, monkeypatch, answer, flags):
    monkeypatch.setattr(lifecycle, "find", Stub)
    monkeypatch.setattr(engine_stats, "stats", lambda containers: [answer])
    theirs = docker({"/containers/md/stats": answer}, "stats", "--no-stream", *flags, "md")
    assert ours("stats", "--no-stream", *flags, "md") == theirs


cells = st.text(st.sampled_from(list("ab0129:?-中 /")), min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=25)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(cells, min_size=n, max_size=n),
                                                     st.lists(st.lists(cells, min_size=n, max_size=n), max_size=4))))
def test_top_prints_what_docker_prints(docker, monkeypatch, table):
    titles, processes = table
    answer = {"Titles": titles, "Processes": processes}
    monkeypatch.setattr("minidocker.container.top.top", lambda ref, ps_args: answer)
    assert ours("top", "md", "-ef") == docker({"/containers/md/top": answer}, "top", "md", "-ef")


@pytest.mark.parametrize("seconds, words", [(90, "About a minute"), (5399, "About an hour"), (5400, "2 hours"),
                                            (47.6 * 3600, "2 days"), (13.99 * 86400, "2 weeks")])
def test_durations_round_hours_as_go_units_does(seconds, words):
    # go-units rounds to the nearest hour before it counts hours, days and weeks: 1.5 hours is
    # "2 hours", not "About an hour".
    from minidocker.container.inspect import human_duration

    assert human_duration(seconds) == words


@pytest.mark.parametrize("command", ["pause", "unpause", "stats", "top"])
def test_new_commands_have_help(md, command):
    out = md(command, "--help")
    assert out.returncode == 0 and out.stdout.startswith(f"usage: minidocker {command}"), out.stderr


def test_stats_computes_cpu_as_the_docker_cli_does():
    # One core's worth of time on a 2-CPU machine is 100%: 1 s of the container's CPU time while
    # the machine spent 2 s (two CPUs, one second each).
    before = {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 2}
    after = {"cpu_usage": {"total_usage": 10**9}, "system_cpu_usage": 2 * 10**9, "online_cpus": 2}
    assert engine_stats.cpu_percent(before, after) == 100.0
    assert engine_stats.cpu_percent(after, after) == 0.0  # no time passed: 0, not a division by zero


def test_system_cpu_counts_this_machines_cpus():
    total_ns, cpus = engine_stats.system_cpu()
    assert cpus == os.cpu_count() and total_ns > 0


def test_stats_without_no_stream_redraws_until_interrupted(md, rootfs):
    harness.need_root()
    cid = md("run", "-d", "--rootfs", rootfs, "--", "sleep", "300", check=True).stdout.strip()
    streaming = harness.popen_cli("stats", cid[:12], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = b""

        def two_frames():
            nonlocal seen
            if select.select([streaming.stdout], [], [], 0.1)[0]:
                seen += os.read(streaming.stdout.fileno(), 65536)
            return seen.count(b"\033[J") >= 2

        harness.wait_until(two_frames, "two tables from `stats`", timeout=15)
        streaming.send_signal(signal.SIGINT)  # ^C
        _, errors = streaming.communicate(timeout=10)
    finally:
        streaming.kill()
        md("rm", "-f", cid)
    frame = seen.split(b"\033[J")[0]
    lines = frame.removeprefix(b"\033[H").split(b"\033[K\n")
    assert frame.startswith(b"\033[H") and lines[0].startswith(b"CONTAINER ID") and lines[1].startswith(cid[:12].encode()), (
        f"each table starts at the cursor's home and erases the rest of each line, as the docker CLI draws: {frame!r}")
    assert streaming.returncode == 130 and errors == b"", "^C ends it quietly, with the shell's 130"


# ---------------------------------------------------------------------------------------------
# What is not there yet, and the version

def test_version_names_the_engine_api_the_daemon_serves(md):
    from minidocker import API_VERSION

    out = md("version").stdout
    assert f"Docker Engine API {API_VERSION}" in out, out


@pytest.mark.parametrize("argv", [["inspect", "--type", "container", "-f", "{{.Nope}}", "x"], ["inspect", "-f", "{{printf}}", "x"],
                                  ["ps", "--format", "{{"], ["stats", "--no-stream", "--format", "{{end}}"],
                                  ["top"], ["pause"], ["unpause"]])
def test_bad_input_is_one_line_and_125(md, argv):
    out = md(*argv)
    assert out.returncode == 125 and out.stderr.startswith("minidocker: ") and out.stderr.count("\n") == 1, out


def test_run_does_not_import_what_only_the_new_commands_need():
    # `minidocker run` must start fast: the template engine, the tables, stats and top are
    # imported by the commands that use them, never on run's path.
    code = ("import sys; from minidocker import cli; p = cli.build_parser('run'); "
            "p.parse_args(['run', '--rootfs', '/x', '--', 'true']); "
            "print(sorted(m for m in sys.modules if m.startswith('minidocker.container')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=harness.cli_env()).stdout
    for module in ("gotemplate", "formatting", "stats", "top", "inspect"):
        assert f"minidocker.container.{module}'" not in loaded, loaded
