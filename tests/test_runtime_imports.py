"""The runtime's light commands stay light: what `minidocker-runc start|state|kill|delete` import.

containerd's shim starts a runtime process for every call, and for a Python runtime most of a
call is the interpreter's start and its imports (docs/09-runtime.md#the-benchmark). So the
commands that do not make a process must not import the code that does (spawn.py, process.py,
rootfs.py, mounts.py, security/), nor minidocker.linux's ctypes, nor the device rules' BPF assembler.
"""

import json
import subprocess
import sys

import pytest

import harness

# Made only by create and exec; a light command that imports one of these pays for all of them.
HEAVY = ("minidocker.runtime.spawn", "minidocker.runtime.process", "minidocker.runtime.rootfs",
         "minidocker.runtime.mounts", "minidocker.security", "minidocker.linux", "minidocker.exeseal",
         "minidocker.cgroups.devices", "minidocker.cgroups.devices_bpf", "ctypes", "typing", "shutil")


def loaded_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import json, sys; {code}; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=harness.cli_env(), check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["start", "md-x"], ["state", "md-x"], ["kill", "md-x", "9"],
                                  ["delete", "--force", "md-x"], ["ps", "--format", "json", "md-x"],
                                  ["events", "--stats", "md-x"], ["list"]])
def test_runc_light_commands_import_no_create_path(argv):
    # Parsed and dispatched up to the runtime's function: the container does not exist, which
    # raises after every import the command makes.
    loaded = loaded_by("from minidocker.cli import runc; "
                       f"runc.main(['--root', '/nonexistent-md-root', *{argv!r}])")
    assert not loaded & set(HEAVY), f"minidocker-runc {argv[0]} imports {sorted(loaded & set(HEAVY))}"


@pytest.mark.parametrize("command", ["start", "state", "kill", "delete", "list"])
def test_runtime_face_light_commands_import_no_create_path(command):
    argv = ["runtime", "--root", "/nonexistent-md-root", command] + ([] if command == "list" else ["md-x"])
    loaded = loaded_by(f"from minidocker import cli; cli.main({argv!r})")
    assert not loaded & set(HEAVY), f"minidocker runtime {command} imports {sorted(loaded & set(HEAVY))}"


def test_runc_builds_only_the_parser_of_its_command():
    from minidocker.cli import runc

    chosen = runc.build_parser("state")._subparsers._group_actions[0].choices
    assert list(chosen) == ["state"], sorted(chosen)


@pytest.mark.parametrize("argv, root, command", [
    (["--root", "kill", "kill", "md-x", "9"], "kill", "kill"),  # the first "kill" is --root's value
    (["--root", "start", "state", "md-x"], "start", "state"),   # the partial parser fails: all of them
    (["--log", "delete", "delete", "--force", "md-x"], None, "delete"),
])
def test_a_value_that_looks_like_a_command_still_parses(argv, root, command):
    from minidocker.cli import runc

    args = runc.parse(argv)
    assert (args.root, args.runc_command, args.id) == (root, command, "md-x"), args


def test_the_package_still_names_what_create_uses():
    # StartError, exit_code and join come from the create path, on first use (PEP 562).
    loaded = loaded_by("from minidocker import runtime; runtime.exit_code, runtime.StartError, runtime.join")
    assert "minidocker.runtime.spawn" in loaded and "minidocker.runtime.process" in loaded
    from minidocker import runtime

    assert runtime.exit_code(9) == 137 and issubclass(runtime.StartError, Exception)
    with pytest.raises(AttributeError):
        runtime.md_no_such_name  # noqa: B018
