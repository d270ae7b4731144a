"""minidocker.linux: the flag arithmetic and the errno mapping (the real calls are exercised
by chapter 01, where the runtime uses them)."""

import ctypes
import errno
import importlib
import os
import subprocess
import sys
import types

import pytest
from hypothesis import given, strategies as st

from minidocker import linux

names = st.sets(st.sampled_from(sorted(linux.NAMESPACES)))


@given(names)
def test_namespace_flags_round_trip(chosen):
    flags = linux.namespace_flags(chosen)
    assert linux.namespace_names(flags) == chosen
    assert bin(flags).count("1") == len(chosen), "each namespace is exactly one bit"


@given(names, names)
def test_flags_of_a_union_are_the_or_of_the_flags(a, b):
    assert linux.namespace_flags(a | b) == linux.namespace_flags(a) | linux.namespace_flags(b)


def test_flags_are_the_kernels():
    # From <linux/sched.h>; CLONE_NEWNS is the oldest, hence its odd name.
    assert linux.namespace_flags({"mount"}) == 0x00020000
    assert linux.namespace_flags({"pid", "network"}) == 0x20000000 | 0x40000000


def test_unknown_namespace_is_refused():
    with pytest.raises(ValueError, match="unknown namespace type 'time'"):
        linux.namespace_flags({"time"})


@given(st.sampled_from(sorted(errno.errorcode)), st.text(max_size=20))
def test_errno_becomes_an_oserror_that_names_the_call(err, argument):
    ctypes.set_errno(err)
    with pytest.raises(OSError) as raised:
        linux._check(-1, "mount", argument)
    assert raised.value.errno == err
    assert str(raised.value).startswith(f"[Errno {err}] mount({argument!r}): ")
    assert errno.errorcode[err] in str(raised.value)


@given(st.integers(0, 2**31))
def test_success_passes_the_result_through(result):
    assert linux._check(result, "unshare") == result


def test_a_real_failing_call_names_itself(tmp_path):
    missing = str(tmp_path / "md-missing")
    with pytest.raises(OSError) as raised:
        linux.umount2(missing)
    assert raised.value.errno in (errno.ENOENT, errno.EINVAL, errno.EPERM)
    assert f"umount2('{missing}', 0)" in str(raised.value)


def test_pivot_root_has_this_architectures_number():
    assert linux.SYS_PIVOT_ROOT == {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, linux.SYS_PIVOT_ROOT)



def test_chapter_08_calls_load_on_first_use():
    # In a fresh interpreter: in this one, other tests may have loaded them already.
    code = ("import sys; from minidocker import linux; "
            "assert not [m for m in sys.modules if m.startswith('minidocker.linux.')]; linux.capset; "
            "assert [m for m in sys.modules if m.startswith('minidocker.linux.')] == ['minidocker.linux.capabilities']")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.parametrize("module", sorted(linux._LATER))
def test_every_public_name_of_a_chapter_08_module_is_a_name_of_linux(module):
    sub = importlib.import_module(f"minidocker.linux.{module}")
    core = {name for name in vars(linux) if name not in linux._HOME}  # what the submodules import
    public = {name for name, value in vars(sub).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in core}
    assert public == set(linux._LATER[module]), "linux._LATER must list exactly the module's names"
    assert all(getattr(linux, name) is getattr(sub, name) for name in public)
