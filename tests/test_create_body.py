"""The command line is a thin translation: for the same flags, minidocker's create body is the
one the real docker CLI POSTs to /containers/create (recorded on a socket, see docker_cli.py).

Compared: every field minidocker sends must have docker's value, and every field that docker's
flags change (against docker's body with no flags) must be one that minidocker sends. `Image` is
left out: until chapter 03 minidocker's "image" is a --rootfs directory.
"""

import importlib
import os

import harness
import pytest
from hypothesis import given, settings, strategies as st

from minidocker.cli import build_parser
from minidocker.cli.create_flags import create_body

docker_cli = importlib.import_module("tests.docker_cli")  # a helper module, not a test file


@pytest.fixture(scope="module")
def docker_default():
    harness.need(docker_cli.docker_available(), "the docker CLI (no daemon): apt-get install docker.io")
    return docker_cli.record_create(["busybox"])["body"]


def ours(flags: list[str], command: list[str], detach=False) -> tuple[str | None, dict]:
    verb = ["run", "-d"] if detach else ["create"]
    args = build_parser(verb[0]).parse_args([*verb, *flags, "--rootfs", "/md-rootfs", "--", *command])
    return create_body(args, detach=detach)


def comparable(key: str, value):
    # The docker CLI (28.x) merges -e flags through a Go map: one entry per NAME, the last value
    # wins, and the order is random. So Env is compared as a set.
    return sorted(value) if key == "Env" and value else value


def compare(theirs: dict, default: dict, mine: dict) -> None:
    for section_theirs, section_default, section_mine, where in (
            (theirs, default, mine, ""),
            (theirs["HostConfig"], default["HostConfig"], mine["HostConfig"], "HostConfig.")):
        for key, value in section_mine.items():
            if key in ("HostConfig", "Image"):
                continue
            assert key in section_theirs and comparable(key, section_theirs[key]) == comparable(key, value), \
                f"{where}{key}: minidocker sends {value!r}, docker {section_theirs.get(key, '<nothing>')!r}"
        for key, value in section_theirs.items():
            if key not in ("HostConfig", "Image") and section_default.get(key) != value:
                assert key in section_mine, f"docker's flags set {where}{key} = {value!r}; minidocker sends nothing"


names = st.from_regex(r"[a-z][a-z0-9_.-]{1,10}", fullmatch=True)
sizes = st.builds(lambda n, unit, upper: f"{n}{unit.upper() if upper else unit}",
                  st.integers(6, 4096), st.sampled_from(["m", "mb", "mib", "g", "k"]), st.booleans())
flag_sets = st.fixed_dictionaries({}, optional={
    "--name": names,
    "-e": st.lists(st.from_regex(r"[A-Z_]{1,6}=[ -~]{0,8}", fullmatch=True), min_size=1, max_size=3),
    "-w": st.from_regex(r"/[a-z]{1,8}(/[a-z]{1,8})?", fullmatch=True),
    "-u": st.from_regex(r"[0-9]{1,5}(:[0-9]{1,5})?", fullmatch=True),
    "-h": st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
    "-m": sizes,
    "--cpus": st.decimals("0.01", "2", places=2).map(str),
    "--pids-limit": st.integers(-1, 1000).map(str),
    "-i": st.just(True), "-t": st.just(True), "--rm": st.just(True),
    "--read-only": st.just(True), "--init": st.just(True)})


def argv(flags: dict) -> list[str]:
    out = []
    for flag, value in flags.items():
        for v in value if isinstance(value, list) else [value]:
            out += [flag] if v is True else [flag, v]
    return out


@settings(max_examples=25)
@given(flag_sets, st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=3))
def test_create_body_is_the_docker_clis(docker_default, flags, command):
    recorded = docker_cli.record_create([*argv(flags), "busybox", *command])
    name, body = ours(argv(flags), command)
    assert name == recorded["name"]
    compare(recorded["body"], docker_default, body)


def test_run_detached_attaches_nothing(docker_default):
    log = docker_cli.record_raw(["run", "-d", "-i", "busybox", "true"])[1]
    _, body = ours(["-i"], ["true"], detach=True)
    compare(docker_cli.find_create(log)["body"], docker_default, body)


def test_an_unset_variable_is_sent_bare(docker_default):
    os.environ.pop("MD_SURELY_UNSET", None)
    _, body = ours(["-e", "MD_SURELY_UNSET"], ["true"])
    assert body["Env"] == docker_cli.record_create(["-e", "MD_SURELY_UNSET", "busybox", "true"])["body"]["Env"]
