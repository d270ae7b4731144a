"""Shared by chapter 06's build tests: a store of the test's own, contexts written from a dict,
and the classic builder's output read back step by step."""

import json
import os
import re
import shutil

import pytest

import harness

DOCS = "docs/06-build.md"


@pytest.fixture
def mdr(tmp_path):
    """The CLI in a store of its own (MINIDOCKER_ROOT); whatever containers it left are removed."""
    root = str(tmp_path / "md-root")
    env = {"MINIDOCKER_ROOT": root}

    def run(*args, **kwargs):
        return harness.run_cli(*args, env={**env, **kwargs.pop("env", {})}, **kwargs)

    run.root = root
    yield run
    ids = run("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        run("rm", "-f", *ids)
    shutil.rmtree(root, ignore_errors=True)


def context(tmp_path, files: dict[str, str | bytes], name: str = "ctx") -> str:
    """A context directory with these files (relative path -> content)."""
    root = tmp_path / name
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(root)


def ok(out, what: str, section: str = "") -> str:
    assert out.returncode == 0, f"{what}: {harness.explain(out)}\n{out.stdout} ({DOCS}{section})"
    return out.stdout


def build(mdr, ctx: str, *flags: str, section: str = "") -> str:
    return ok(mdr("build", *flags, ctx), f"build {' '.join(flags)}", section)


def steps(output: str) -> list[dict]:
    """The output as steps: {"text": "RUN ...", "lines": [the lines after it], "id": "<12 hex>"}."""
    found = []
    for line in output.splitlines():
        m = re.match(r"Step (\d+)/(\d+) : (.*)", line)
        if m:
            found.append({"n": int(m[1]), "of": int(m[2]), "text": m[3], "lines": [], "id": None})
        elif found:
            found[-1]["lines"].append(line)
            m = re.fullmatch(r" ---> ([0-9a-f]{12})", line)
            if m:
                found[-1]["id"] = m[1]
    return found


def built_id(output: str) -> str:
    m = re.search(r"^Successfully built ([0-9a-f]{12})$", output, re.M)
    assert m, f"no 'Successfully built <id>' line in the output:\n{output} ({DOCS}#output)"
    return m[1]


def inspect(mdr, name: str) -> dict:
    return json.loads(ok(mdr("image", "inspect", name), f"image inspect {name}"))[0]


def image_config(mdr, image_id: str) -> dict:
    """The whole OCI config of an image, from the store (history included)."""
    digest = inspect(mdr, image_id)["Id"]
    with open(os.path.join(mdr.root, "images", "blobs", "sha256", digest[7:])) as f:
        return json.load(f)
