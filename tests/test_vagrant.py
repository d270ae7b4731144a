"""The lab VM's Vagrantfile: what it must declare, and `vagrant validate` where vagrant is installed.

Without vagrant, the static checks still run: the box, the four providers with their CPUs and
memory, the synced folder and the provisioner. `vagrant validate -p` adds what only Vagrant can
judge (Ruby syntax, unknown settings); it never downloads a box. It ignores the provider blocks,
because their plugins are not installed here, and that is why the static checks cover them.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import harness

REPO = Path(harness.REPO)
VAGRANTFILE = REPO / "Vagrantfile"
PROVIDERS = {"virtualbox", "libvirt", "vmware_desktop", "parallels"}
# How each provider spells "CPUs" and "memory" in its config block.
SETTINGS = {"virtualbox": (".cpus =", ".memory ="), "libvirt": (".cpus =", ".memory ="),
            "parallels": (".cpus =", ".memory ="),
            "vmware_desktop": ('.vmx["numvcpus"] =', '.vmx["memsize"] =')}


def provider_blocks(text: str) -> dict[str, str]:
    """`config.vm.provider "NAME" do |x| ... end` -> {NAME: body}; the end is the first `end`
    at the block's own indentation."""
    blocks = {}
    for m in re.finditer(r'^([ \t]*)config\.vm\.provider "(\w+)" do \|[^|]*\|\n(.*?)^\1end\b', text, re.M | re.S):
        blocks[m[2]] = m[3]
    return blocks


def static_problems(text: str) -> list[str]:
    problems = []
    box = re.search(r'^\s*config\.vm\.box = "([^"]+)"', text, re.M)
    if not box or not re.search(r"debian-12|bookworm", box[1]):
        problems.append(f"the box should be Debian 12, got {box and box[1]!r}")
    blocks = provider_blocks(text)
    if set(blocks) != PROVIDERS:
        problems.append(f"providers should be {sorted(PROVIDERS)}, got {sorted(blocks)}")
    for name, body in blocks.items():
        for setting in SETTINGS.get(name, ()):
            if setting not in body:
                problems.append(f"provider {name} does not set {setting.strip(' =')}")
    constants = {k: int(v) for k, v in re.findall(r"^([A-Z_]+) = (\d+)", text, re.M)}
    if not (constants.get("CPUS", 0) >= 2 and constants.get("MEMORY_MB", 0) >= 1024):
        problems.append(f"CPUS >= 2 and MEMORY_MB >= 1024 expected, got {constants}")
    synced = re.search(r'^\s*config\.vm\.synced_folder "\.", "([^"]+)"', text, re.M)
    if not synced or synced[1] != "/minidocker":
        problems.append("the repository should be synced to /minidocker")
    provision = re.search(r'^\s*config\.vm\.provision "shell", inline: "bash ([^"]+)"', text, re.M)
    if not provision or provision[1] != "/minidocker/scripts/setup.sh":
        problems.append("the provisioner should run /minidocker/scripts/setup.sh, the script CI runs")
    return problems


def vagrant_validate(directory: Path, scratch: Path) -> subprocess.CompletedProcess:
    # A scratch home and data dir: no ~/.vagrant.d and no .vagrant/ in the repository, and no
    # version check over the network (checkpoint).
    env = {**os.environ, "VAGRANT_CWD": str(directory), "VAGRANT_HOME": str(scratch / "home"),
           "VAGRANT_DOTFILE_PATH": str(scratch / "dot"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    return subprocess.run(["vagrant", "validate", "--ignore-provider", "--no-color"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_vagrantfile_declares_the_lab_vm():
    assert static_problems(VAGRANTFILE.read_text()) == []
    # The provisioner's script is the one that `make setup` (and so `make test` and CI) runs.
    assert (REPO / "scripts" / "setup.sh").is_file()
    assert "scripts/setup.sh" in (REPO / "Makefile").read_text()


@pytest.mark.parametrize("mistake, good, bad", [
    ("a provider missing", 'config.vm.provider "parallels"', 'config.vm.provider "hyperv"'),
    ("no memory for VirtualBox", "vb.memory = MEMORY_MB", "vb.gui = false"),
    ("another box", '"bento/debian-12"', '"bento/ubuntu-24.04"'),
    ("another provisioner", "bash /minidocker/scripts/setup.sh", "bash /minidocker/other.sh"),
])
def test_static_checks_catch_mistakes(mistake, good, bad):
    text = VAGRANTFILE.read_text()
    assert good in text, f"this test's sample {good!r} is no longer in the Vagrantfile: update the test"
    assert static_problems(text.replace(good, bad)), f"{mistake} went unnoticed"


def test_vagrant_validate(tmp_path):
    if shutil.which("vagrant") is None:
        # CI installs vagrant, so that this test runs there; a learner's VM need not have it.
        assert not harness.IN_CI, "CI must have vagrant: apt-get install --no-install-recommends vagrant"
        return
    proc = vagrant_validate(REPO, tmp_path)
    assert proc.returncode == 0, f"vagrant validate failed:\n{proc.stdout}{proc.stderr}"
    # And it can fail: a misspelt setting is caught by Vagrant, not by the static checks.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Vagrantfile").write_text(VAGRANTFILE.read_text().replace("config.vm.hostname", "config.vm.hostnam"))
    proc = vagrant_validate(broken, tmp_path)
    assert proc.returncode != 0 and "hostnam" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
