"""Chapter 01: bad input gets one clear line, exit code 125, and leaves nothing behind
(docs/01-isolation.md#errors)."""

import contextlib
import io
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from minidocker import cli


def one_line_125(out, *words):
    assert out.returncode == 125, f"expected Docker's engine-error code 125, got {out.returncode}: {out.stderr}"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidocker: "), f"one line, `minidocker: <what> (<hint>)`:\n{out.stderr}"
    for word in words:
        assert word in lines[0], f"the error should mention {word!r}: {lines[0]}"


def test_unknown_flag(md, rootfs):
    one_line_125(md("run", "--md-bogus", "--rootfs", rootfs, "--", "true"), "--md-bogus")


def test_missing_rootfs(md, tmp_path):
    one_line_125(md("run", "--rootfs", tmp_path / "md-nowhere", "--", "true"), "md-nowhere")


@pytest.mark.parametrize("size", ["abc", "12q", "-5m", "1.2.3g", ""])
def test_bad_memory_size(md, rootfs, size):
    one_line_125(md("run", "-m", size, "--rootfs", rootfs, "--", "true"))


def test_invalid_and_duplicate_names(md, rootfs):
    one_line_125(md("create", "--name", "md bad name", "--rootfs", rootfs, "--", "true"), "Invalid container name")
    md("create", "--name", "md-dup", "--rootfs", rootfs, "--", "true", check=True)
    one_line_125(md("create", "--name", "md-dup", "--rootfs", rootfs, "--", "true"), "md-dup")
    md("rm", "md-dup", check=True)


def test_exec_into_a_stopped_container(md, rootfs):
    md("create", "--name", "md-stopped", "--rootfs", rootfs, "--", "true", check=True)
    one_line_125(md("exec", "md-stopped", "true"), "not running")
    md("rm", "md-stopped", check=True)


def test_a_relative_workdir(md, rootfs):
    one_line_125(md("run", "-w", "md-relative", "--rootfs", rootfs, "--", "true"), "absolute path")


def test_dash_it_needs_a_terminal(md, rootfs):
    one_line_125(md("run", "-it", "--rootfs", rootfs, "--", "sh", input="exit\n"), "not a TTY")


def test_no_such_container(md):
    one_line_125(md("logs", "md-nobody"), "No such container")


def containers() -> list[str]:
    return sorted(os.listdir(os.path.join(os.environ["MINIDOCKER_ROOT"], "containers")))


@pytest.mark.parametrize("flags, words", [
    (["-u", "99999999999"], ["uids and gids must be in range"]),  # too big for the kernel's uid_t
    (["-u", "4294967295"], ["uids and gids must be in range"]),   # (uid_t)-1: "no change" to setuid
    (["-h", "x" * 65], ["hostname"]),                            # sethostname takes 64 bytes...
    (["-h", "é" * 33], ["hostname"]),                            # ...and é is two of them
    (["-h", "md\udcff"], ["hostname"]),                         # a byte that is no UTF-8
    (["-m", "99999999999999999999999g"], ["-m, --memory", "out of range"]),
    (["-m", "-5m"], ["-m, --memory", "invalid size"]),
    (["--pids-limit", "99999999"], ["pids limit"]),              # over the kernel's PID_MAX_LIMIT
    (["--cpus", "inf"], ["--cpus", "rational number"]),
])
def test_bad_values_are_refused_before_anything_starts(md, rootfs, flags, words):
    before = containers()
    one_line_125(md("run", *flags, "--rootfs", rootfs, "--", "true"), *words)
    assert containers() == before, f"`run {' '.join(flags)}` was refused, yet left a container behind"
    # ...and no cgroup, mount or process: the leak check (conftest.py) fails this test if it did.


@pytest.mark.parametrize("sig, words", [("0", ["invalid signal: 0"]), ("99", ["does not support signal 99"]),
                                        ("SIGMD", ["invalid signal: SIGMD"])])
def test_kill_refuses_what_is_no_signal(md, container, sig, words):
    cid = container("sleep", "30")
    one_line_125(md("kill", "-s", sig, cid), *words)
    state = json.loads(md("inspect", cid).stdout)[0]["State"]
    assert state["Running"], f"a refused kill must leave the container alone: {state}"


def test_bad_input_leaves_no_state(md, rootfs):
    before = containers()
    md("run", "-m", "lots", "--rootfs", rootfs, "--", "true")
    md("run", "--cpus", "999", "--rootfs", rootfs, "--", "true")
    md("run", "--rootfs", rootfs)
    assert containers() == before


# Any argv at all: the CLI answers with a code and clear lines of error, never a traceback.
# In-process (cli.main) for speed. No "/" in the words, no "." or "..", and the test runs in an
# empty directory: no word names a directory, so no random --rootfs can start a container.
words = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), max_size=12).filter(
    lambda word: word not in (".", ".."))
flags = st.sampled_from(["-d", "-i", "-t", "--rm", "-m", "--cpus", "--pids-limit", "-e", "-u", "-w", "-h",
                         "--name", "-s", "-f", "-a", "-q", "--rootfs", "--", "--help"])
# Numbers at and past the edges: 0, negative, 2^31, 2^63, 2^64 and beyond, with size units.
numbers = st.builds(lambda n, unit: f"{n}{unit}", st.integers(-2**70, 2**70) | st.sampled_from([0, 2**31, 2**63, 2**64]),
                    st.sampled_from(["", "", "m", "g", "p", ".5", "e400"]))


@settings(max_examples=150)
@given(st.sampled_from(["run", "create", "start", "ps", "logs", "stop", "kill", "rm", "exec", "inspect",
                        "wait", "version", "md-nope"]),
       st.lists(st.one_of(flags, words, numbers), max_size=6))
def test_the_cli_never_shows_a_traceback(tmp_path, monkeypatch, command, argv):
    monkeypatch.chdir(tmp_path)
    # Text streams over bytes, as the real ones: `logs` writes the container's bytes to .buffer.
    out, err = io.TextIOWrapper(io.BytesIO(), newline=""), io.TextIOWrapper(io.BytesIO(), newline="")
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            # Containers from a directory, chapter 01's kind (md-none: none, the directory is empty).
            # Without --rootfs a word would be an image, which is chapter 03's: a random word is a
            # valid image name, and no test may ask Docker Hub for it.
            code = cli.main([command, *(["--rootfs", "md-none"] if command in ("run", "create") else []), *argv])
        except SystemExit as e:  # --help exits 0 through argparse
            code = e.code
    err.seek(0)
    lines = err.read().split("\n")[:-1]  # lines end in "\n" (a name may hold other line breaks: \x85)
    # One line per failure (a command given several containers reports each one, as Docker does),
    # each in our words: the catch-all for an unexpected exception names it and asks for its
    # traceback, and that is a bug to fix in its place.
    assert all(line.startswith("minidocker: ") and "MINIDOCKER_DEBUG" not in line for line in lines), lines
    assert len(lines) <= max(1, len(argv)), lines
    assert isinstance(code, int) and 0 <= code <= 255
