"""The CLI frame: Docker's exit codes, one-line errors, help for every command, version."""

import subprocess
import sys

import pytest

import harness
from minidocker import cli

COMMANDS = ["version", "doctor", "rootfs", "run", "create", "start", "ps", "logs", "stop", "wait",
            "kill", "rm", "exec", "inspect", "diff", "lab"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(md, command):
    out = md(command, "--help")
    assert out.returncode == 0 and out.stdout.startswith(f"usage: minidocker {command}"), out.stderr


def test_version_both_ways(md):
    assert md("version").stdout == md("--version").stdout
    assert md("version").stdout.startswith("minidocker version ")


@pytest.mark.parametrize("argv", [["md-nope"], ["ps", "--md-nope"], ["run"], ["rm"], ["kill", "-s"]])
def test_bad_usage_is_one_line_and_125(md, argv):
    out = md(*argv)
    assert out.returncode == 125, out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("minidocker: "), out.stderr


def test_debug_shows_the_traceback(md):
    out = md("logs", "md-nobody", env={"MINIDOCKER_DEBUG": "1"})
    assert "Traceback" in out.stderr and "No such container" in out.stderr


def test_python_dash_m_and_the_console_script_agree():
    script = subprocess.run([sys.executable, "-c", "from minidocker.cli import main; raise SystemExit(main(['version']))"],
                            capture_output=True, text=True, env=harness.cli_env())
    assert script.stdout == harness.run_cli("version").stdout


def test_a_command_imports_only_its_own_module():
    # Start-up time matters: `minidocker ps` must not import the lab tool or chapter 02.
    out = subprocess.run([sys.executable, "-c", "import sys; from minidocker import cli; cli.build_parser('ps'); "
                          "print(sorted(m for m in sys.modules if m.startswith('minidocker')))"],
                         capture_output=True, text=True, env=harness.cli_env())
    assert "minidocker.lab" not in out.stdout and "minidocker.changes" not in out.stdout, out.stdout
    assert cli.PLUGINS, "plugins are registered by module"


def test_a_command_builds_only_its_own_parser():
    # Each flag costs start-up time too: `run` builds run's parser, not those of ps, logs, rm...
    chosen = cli.build_parser("run")._subparsers._group_actions[0].choices
    assert "run" in chosen and "ps" not in chosen and "logs" not in chosen, sorted(chosen)


def test_a_value_that_looks_like_a_command_still_parses(tmp_path):
    # `--root run` names a directory; the command is `list`. Narrowed to `run` first, the parse
    # fails, and the full parser must take over.
    (tmp_path / "run").mkdir()
    out = subprocess.run([sys.executable, "-m", "minidocker", "runtime", "--root", "run", "list", "-q"],
                         capture_output=True, text=True, env=harness.cli_env(), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == "", out.stderr


@pytest.mark.parametrize("argv", [["ps"], ["run", "--rootfs", "/nowhere", "--", "true"], ["rm", "x"]])
def test_without_root_one_clear_line(argv, tmp_path):
    harness.need_root()  # to become someone else
    out = harness.run_cli_as_nobody(*argv, env={"MINIDOCKER_ROOT": str(tmp_path)})
    assert out.returncode == 125 and out.stderr == "minidocker: permission denied: containers need root (run minidocker with sudo)\n", out


def test_a_rootfs_where_one_may_not_write_is_one_clear_line(tmp_path):
    harness.need_root()
    tmp_path.chmod(0o755)  # nobody may enter, but not write
    out = harness.run_cli_as_nobody("rootfs", tmp_path / "md-rootfs")
    assert out.returncode == 125, out
    assert out.stderr == f"minidocker: cannot build a rootfs in {tmp_path / 'md-rootfs'}: Permission denied " \
                         "(choose a directory you may write to, or run as root)\n", out.stderr
    assert not (tmp_path / "md-rootfs").exists()


@pytest.mark.parametrize("argv, error", [
    # The docker CLI gives a flag its next word whatever it is; argparse must too (cli/container.py).
    (["run", "-m", "-5m"], "invalid argument \"-5m\" for \"-m, --memory\" flag: invalid size: '-5m'"),
    (["run", "--cpus", "-.5"], "Range of CPUs is from 0.01"),
    (["run", "-m", "99999999999999999999999g"], "value out of range"),
    (["run", "--pids-limit", "99999999999999999999"], "value out of range"),
    (["run", "--cpus", "inf"], "failed to parse inf as a rational number"),
    (["run", "--cpus", "1/3"], "value is too precise"),
    (["kill", "-s", "0", "md-x"], "invalid signal: 0"),
    (["kill", "-s", "99", "md-x"], "the linux daemon does not support signal 99"),
    (["kill", "-s", "-9", "md-x"], "the linux daemon does not support signal -9"),
])
def test_bad_values_in_dockers_words(md, argv, error):
    out = md(*argv, "--rootfs", "/md-nowhere", "--", "true") if argv[0] == "run" else md(*argv)
    assert out.returncode == 125 and out.stderr.startswith("minidocker: ") and error in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr


@pytest.mark.parametrize("seconds, words", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (61, "About a minute"),
    (150, "2 minutes"), (3700, "About an hour"), (7300, "2 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (100 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_ps_words_durations_as_docker_does(seconds, words):
    from minidocker.container import inspect as containers

    assert containers.human_duration(seconds) == words
