#!/usr/bin/env bash
# The one setup script. `make demo`, `make test`, the Vagrant provisioner and .ci/run all call it,
# so what CI proves is exactly what a learner's VM gets. It is idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run me as root (sudo make demo / sudo make test): containers need root" >&2
  exit 1
fi

# --- Debian/Ubuntu packages --------------------------------------------------------------------
# busybox-static: a statically linked busybox is the whole userland of the default rootfs (it
#                 needs no shared libraries inside the container).
# iproute2, iptables: bridges, veths and NAT (chapter 04); `ip netns` in the leak check.
# runc: the reference OCI runtime, for the bench/ comparison only.
# procps: `minidocker top` runs the host's ps, as dockerd does (a minimal Debian has none).
# docker-registry: a real registry (the distribution project's), on 127.0.0.1, for chapter 03's
#                  pull and push; apache2-utils' htpasswd and openssl make its users and its
#                  token-auth certificate.
# skopeo, umoci, oci-image-tool: other tools that must read our image store as it is (chapter 03).
# gcc, libc6-dev: the runtime's exec stub (minidocker/exec_stub.c, built below) and chapter 08's
#                 attacks are small C programs, built `gcc -static` (a container has no C library
#                 of the host's to link against) and run inside containers.
# apparmor: its apparmor_parser, with which dockerd (chapter 09) loads its docker-default profile
#           on a kernel with AppArmor on (Debian 12's): without it, dockerd refuses every run.
packages=(busybox-static iproute2 iptables runc python3-venv make git procps
          docker-registry apache2-utils openssl skopeo umoci oci-image-tool gcc libc6-dev apparmor)

# Python 3.11 or newer: Debian 12 and Ubuntu 24.04 ship it as python3; Ubuntu 22.04 ships 3.10
# and has python3.11 as an extra package.
py=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  py=python3.11
  packages+=(python3.11 python3.11-venv)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Docker itself, Debian's docker.io (its CLI, dockerd and containerd): chapter 07's suite drives
# minidocker's daemon with the docker CLI (and docker-py), and tests/ compare our requests with
# the CLI's own. Only the CLI is used so far, so the package's scripts may not start a dockerd
# (policy-rc.d says no), and on a booted machine its units stay off. A machine that has a Docker
# Engine already (docker-ce, whose packages conflict with docker.io) keeps it.
docker_cli=0
command -v dockerd >/dev/null || { missing+=(docker.io); docker_cli=1; }
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  policy=/usr/sbin/policy-rc.d
  if [ "$docker_cli" = 1 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT  # ours only: it is removed however the install ends
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$docker_cli" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  fi
fi

# --- the virtualenv ----------------------------------------------------------------------------
# The distribution's own interpreter (not a pyenv or conda one the machine may also have), so the
# venv is the same on the VM, in CI and on a learner's machine.
py=$(command -v "/usr/bin/$py" || command -v "$py")
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
# Reinstall only when the project's dependencies changed since the last install. The editable
# install is a plain path in a .pth file ("compat" mode): setuptools' default import hook costs
# every `minidocker` command ~15 ms at start-up.
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing minidocker and its tools into .venv"
  # pip's own chatter goes to a log, shown only if the install fails.
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]' --config-settings editable_mode=compat; } >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    exit 1
  fi
  touch .venv/.installed
fi
# The package's bytecode, compiled once. Every command is a new process that imports the package,
# and where PYTHONDONTWRITEBYTECODE is set (CI images set it) Python would compile every module
# again at every command: 20-30 ms of each start-up, as long as the whole `runc --version`. Python
# still reads bytecode it may not write, and recompiles a module whose source has changed.
.venv/bin/python -m compileall -q -j 0 minidocker >/dev/null
# The runtime's exec stub (minidocker/exec_stub.c, CVE-2019-5736): every container's command is
# exec'd through it. Static: it runs inside containers, where the host's C library is not.
stub=.venv/libexec/minidocker-exec
if [ ! -x "$stub" ] || [ minidocker/exec_stub.c -nt "$stub" ]; then
  mkdir -p .venv/libexec
  gcc -static -Os -s -Wall -Werror -o "$stub.new" minidocker/exec_stub.c && mv "$stub.new" "$stub"
fi

# --- the daemon as a service (chapter 07), only where systemd is the running init (the lab VM) ---
# As Debian's docker.io package does: a `minidocker` group whose members may use the socket, and
# a unit that starts `minidocker daemon` at boot (contrib/systemd/minidocker.service).
if [ -d /run/systemd/system ]; then
  getent group minidocker >/dev/null || groupadd --system minidocker
  unit=/etc/systemd/system/minidocker.service
  sed "s|@REPO@|$PWD|g" contrib/systemd/minidocker.service >"$unit.new"
  if ! cmp -s "$unit.new" "$unit"; then
    mv "$unit.new" "$unit"
    systemctl daemon-reload
    systemctl enable minidocker.service >/dev/null 2>&1
    systemctl restart minidocker.service || echo "setup: minidocker.service did not start: journalctl -u minidocker" >&2
  else
    rm "$unit.new"
  fi
fi
