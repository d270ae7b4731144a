"""Chapter 01: bad input gets one clear line, exit code 125, and leaves nothing behind
(docs/01-isolation.md#errors)."""

import io
import os
import contextlib

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


def test_bad_input_leaves_no_state(md, rootfs):
    before = sorted(os.listdir(os.path.join(os.environ["MINIDOCKER_ROOT"], "containers")))
    md("run", "-m", "lots", "--rootfs", rootfs, "--", "true")
    md("run", "--cpus", "999", "--rootfs", rootfs, "--", "true")
    md("run", "--rootfs", rootfs)
    assert sorted(os.listdir(os.path.join(os.environ["MINIDOCKER_ROOT"], "containers"))) == before


# Any argv at all: the CLI answers with a code and at most a line of error, never a traceback.
# In-process (cli.main) for speed. No "/" in the words, so no random rootfs can exist.
words = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), max_size=12)
flags = st.sampled_from(["-d", "-i", "-t", "--rm", "-m", "--cpus", "--pids-limit", "-e", "-u", "-w",
                         "--name", "-s", "-f", "-a", "-q", "--rootfs", "--", "--help"])


@settings(max_examples=150)
@given(st.sampled_from(["run", "create", "start", "ps", "logs", "stop", "kill", "rm", "exec", "inspect",
                        "wait", "version", "md-nope"]),
       st.lists(st.one_of(flags, words), max_size=6))
def test_the_cli_never_shows_a_traceback(command, argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main([command, *argv])
        except SystemExit as e:  # --help exits 0 through argparse
            code = e.code
    assert "Traceback" not in err.getvalue() and err.getvalue().count("\n") <= 1, err.getvalue()
    assert isinstance(code, int) and 0 <= code <= 255
