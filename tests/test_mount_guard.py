"""The runtime never changes the mounts of its own mount namespace (issue 9).

A lab's `ex-01-namespaces` that forgets CLONE_NEWNS would leave the container's process in the
runtime's mount namespace, the host's. The next steps, private mounts and pivot_root, would then
make the host's "/" private and pivot the host's root. The runtime remembers its own namespace
before the exercise runs and refuses to build the root in it.

The test plays that slip for real, so it runs the runtime inside a sandbox: a process with its
own private mount namespace. Even a runtime without the guard could only change the sandbox.
"""

import json
import os
import secrets
import subprocess
import sys

import pytest

import harness
from minidocker.container import oci_defaults

SANDBOX = r'''
import json, os, sys
from minidocker import linux, runtime
from minidocker.errors import MinidockerError

linux.unshare(linux.CLONE_NEWNS)  # the sandbox: our own copy of the mount table...
linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # ...that shares no event with the host's
if sys.argv[3] == "slip":  # the learner's slip: every namespace but the mount namespace
    real_unshare = linux.unshare
    linux.unshare = lambda flags: real_unshare(flags & ~linux.CLONE_NEWNS)
null = os.open(os.devnull, os.O_RDWR)
try:
    pid = runtime.run(sys.argv[1], sys.argv[2], stdio=(null, null, null))
except MinidockerError as e:
    print(json.dumps({"error": str(e), "code": e.exit_code}))
else:
    os.waitpid(pid, 0)
    runtime.delete(sys.argv[1], force=True)
    print(json.dumps({"started": True}))
'''


@pytest.fixture
def bundle(rootfs, tmp_path):
    harness.need_root()
    spec = {"ociVersion": "1.0.2",
            "process": {"args": ["true"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": rootfs}, "hostname": "mdguard", "mounts": oci_defaults.default_mounts(),
            "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    return str(tmp_path)


def in_sandbox(bundle: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SANDBOX, f"mdguard-{secrets.token_hex(4)}", bundle, mode],
                         env=dict(os.environ, PYTHONPATH=harness.REPO), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout, f"the sandbox failed (exit {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def test_the_root_is_built_in_a_new_mount_namespace_only(bundle):
    assert in_sandbox(bundle, "ok") == {"started": True}, "the sandbox itself must let a container start"
    result = in_sandbox(bundle, "slip")
    assert "error" in result, ("a container whose process stayed in the runtime's mount namespace "
                               "started: the runtime made that namespace's / private and pivoted it")
    assert result["code"] == 125 and "runtime's own mount namespace" in result["error"], result
    assert "CLONE_NEWNS" in result["error"], f"the error must say what to do: {result['error']}"
