"""Chapter 00: is this machine ready? Each test is one check of `minidocker doctor`, and its
failure says how to fix the machine (docs/00-setup.md)."""

import pytest
from hypothesis import given, strategies as st

from minidocker import doctor


@pytest.mark.parametrize("check", doctor.checks(), ids=lambda c: c.name)
def test_machine_is_ready(check):
    assert check.ok, f"{check.name}: {check.detail}. Fix: {check.fix} (docs/00-setup.md#doctor)"


def test_doctor_prints_every_check(md):
    out = md("doctor")
    assert out.returncode == 0, f"`minidocker doctor` found a problem:\n{out.stdout}"
    for check in doctor.checks():
        assert check.name in out.stdout, f"doctor's table misses the {check.name!r} check"


@given(st.integers(2, 9), st.integers(0, 99), st.text("0123456789-abcdef.", max_size=12))
def test_kernel_version_parsing(major, minor, suffix):
    # uname -r looks like "6.1.0-18-amd64" or "5.15.0-91-generic": only major.minor matter.
    assert doctor.kernel_version(f"{major}.{minor}.{suffix}") == (major, minor)
