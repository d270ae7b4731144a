"""Hardening: what stops root in a container from being root on the host (chapter 08).

Namespaces hide the host; they take no power away. Root in a new namespace still holds every
capability the runtime had, may make any system call, and sees kernel files that act on the whole
machine. Docker adds locks, each a field of the OCI runtime config that the runtime enforces:

- capabilities.py: `process.capabilities`, the 14 of root's powers Docker keeps (bounding,
  permitted, effective, inheritable; ambient empty), `--cap-add`, `--cap-drop`, `--privileged`;
- seccomp.py: `linux.seccomp`, Docker's default profile compiled to a BPF filter the kernel runs
  on every system call (seccomp_profile.py holds the profile, syscalls.py the numbers);
- devices.py: `linux.resources.devices`, the device cgroup that lets the container open only
  the default devices (v1's devices.allow/deny, v2's BPF device program), and `--device`;
- userns.py: `linux.uidMappings`, container root mapped to an unprivileged range of the host
  (remapped_files.py: the layer copies and files that mapped root must own);
- options.py: `--security-opt`, parsed with Docker's words.

apply() is the engine's side (container/spec.py calls it): HostConfig -> those OCI fields. The
runtime's side is in runtime/process.py, which enforces them in runc's order, last before exec.
See docs/08-hardening.md.
"""

import os


def apply(spec: dict, host_config: dict) -> None:
    """Write the container's locks into its OCI config, from HostConfig (CapAdd, CapDrop,
    Privileged, SecurityOpt, Devices, UsernsMode)."""
    # Imported here, not above: the runtime's process imports only the two it enforces itself
    # (capabilities, seccomp), and each container start pays for what it imports.
    from minidocker.security import capabilities, devices, seccomp, userns

    if os.environ.get("MINIDOCKER_HARDENING") == "off":
        # The engine as it was before this chapter: root in a container keeps every capability,
        # with no seccomp filter and no device cgroup. Chapters 01-07's suites run so, as the
        # suites before chapter 04 run without a bridge: each uses only what it and the chapters
        # before it build (and a lab with chapter 08's exercises blank still runs them).
        return
    capabilities.to_spec(spec, host_config)
    seccomp.to_spec(spec, host_config)
    devices.to_spec(spec, host_config)
    userns.to_spec(spec, host_config)
