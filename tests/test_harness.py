"""The harness itself: the leak check, and CI's rule that a skip is a failure.

The leak check must catch a test that leaves something behind, and clean it up: an inner pytest
session runs tests that leak on purpose (a mount, a cgroup, an md* link, a
process); each must fail with the leak named, and the host must be clean afterwards (the outer
session's own leak check would fail this test otherwise).
"""

import os
import shutil
import subprocess
import sys

import harness

LEAKY_TESTS = '''
import os, subprocess, time

def test_clean():
    assert True

def test_leaks_a_mount():
    target = os.path.join(os.environ["MINIDOCKER_ROOT"], "md-leak")
    os.makedirs(target)
    subprocess.run(["mount", "-t", "tmpfs", "md-leak", target], check=True)

def test_leaks_a_cgroup():
    os.makedirs(f"/sys/fs/cgroup/pids/{os.environ['MINIDOCKER_CGROUP_PARENT']}/md-leak")

def test_leaks_a_link():
    subprocess.run(["ip", "link", "add", "mdleak0", "type", "veth", "peer", "name", "mdleak1"], check=True)

def test_leaks_a_process():
    subprocess.Popen(["sleep", "60"], start_new_session=True)
'''


def test_each_leak_fails_its_test_and_is_cleaned(tmp_path):
    harness.need_root()
    harness.need(os.path.isdir("/sys/fs/cgroup/pids"), "a v1 pids hierarchy (this test creates a cgroup there)")
    shutil.copy(os.path.join(harness.REPO, "conftest.py"), tmp_path)
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    env = dict(os.environ, PYTHONPATH=harness.REPO)
    env.pop("MINIDOCKER_ROOT"), env.pop("MINIDOCKER_CGROUP_PARENT")  # the inner session makes its own
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    report = out.stdout
    # The check runs when the test's fixtures are torn down, so pytest reports "ERROR at teardown".
    assert "5 passed, 4 errors" in report, f"each leaking test must be flagged and the clean one pass:\n{report}"
    for leak, kind in [("a_mount", "mounts"), ("a_cgroup", "cgroups"), ("a_link", "links"), ("a_process", "processes")]:
        section = report.split(f"ERROR at teardown of test_leaks_{leak}")[-1]
        message = next(l for l in section.splitlines() if "left things behind" in l)
        assert f"'{kind}'" in message, f"test_leaks_{leak} should be flagged with its {kind}:\n{report}"
    assert "mdleak0" not in os.listdir("/sys/class/net"), "the leaked link must have been removed"
    assert out.returncode == 1


def test_under_ci_a_skip_is_a_failure(tmp_path):
    shutil.copy(os.path.join(harness.REPO, "conftest.py"), tmp_path)
    (tmp_path / "test_skipping.py").write_text("import pytest\n\ndef test_skips():\n    pytest.skip('md')\n")
    env = dict(os.environ, PYTHONPATH=harness.REPO)
    env.pop("MINIDOCKER_ROOT"), env.pop("MINIDOCKER_CGROUP_PARENT")
    results = {}
    for ci in ("true", ""):
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                             cwd=tmp_path, env=dict(env, CI=ci), capture_output=True, text=True, timeout=60)
        results[ci] = out.stdout.strip().splitlines()[-1]
    assert "1 failed" in results["true"], f"CI=true must turn a skip into a failure: {results['true']}"
    assert "1 skipped" in results[""], f"on a learner's machine a skip stays a skip: {results['']}"
