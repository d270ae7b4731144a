"""minidocker/container/spec.py: Docker's flag syntax, and the OCI runtime config it builds."""

import pytest
from hypothesis import given, strategies as st

from minidocker.container import spec
from minidocker.errors import MinidockerError

UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@given(st.integers(0, 10**6), st.sampled_from(sorted(UNITS)), st.booleans())
def test_sizes_in_dockers_units(number, unit, upper):
    text = f"{number}{unit.upper() if upper else unit}"
    assert spec.parse_size(text) == number * UNITS[unit]


@given(st.text(max_size=12))
def test_any_size_text_parses_or_is_a_clear_error(text):
    try:
        assert spec.parse_size(text) >= 0
    except MinidockerError as e:
        assert "invalid size" in str(e) and "\n" not in e.hint


@given(st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", fullmatch=True))
def test_valid_names_pass(name):
    assert spec.check_name(name) == name


@pytest.mark.parametrize("name", ["a", "-x", "has space", "bad/slash", "ünï", ""])
def test_invalid_names_are_refused(name):
    with pytest.raises(MinidockerError, match="Invalid container name"):
        spec.check_name(name)


@given(st.lists(st.from_regex(r"[A-Z]{1,3}=[a-z]{0,3}", fullmatch=True), max_size=8),
       st.lists(st.from_regex(r"[A-Z]{1,3}=[a-z]{0,3}", fullmatch=True), max_size=8))
def test_later_env_entries_win(defaults, overrides):
    merged = dict(item.split("=", 1) for item in spec.merge_env(defaults, overrides))
    assert merged == dict(item.split("=", 1) for item in defaults + overrides)


def test_the_config_keeps_ocis_field_names(tmp_path):
    config = spec.build(args=["sh"], rootfs=str(tmp_path), hostname="h", memory=64 << 20, pids=10, cpus=0.5)
    assert config["ociVersion"].startswith("1.")
    assert config["process"]["args"] == ["sh"] and config["root"]["path"] == str(tmp_path)
    assert {ns["type"] for ns in config["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert config["linux"]["resources"] == {"memory": {"limit": 64 << 20}, "pids": {"limit": 10},
                                            "cpu": {"quota": 50000, "period": 100000}}
