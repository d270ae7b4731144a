"""Docker's flag syntax (cli/create_flags.py), the engine's checks (container/config.py), and the
OCI runtime config built from Config and HostConfig (container/spec.py)."""

import pytest
from hypothesis import given, strategies as st

from minidocker.cli import create_flags
from minidocker.container import config, oci_defaults, spec
from minidocker.errors import MinidockerError

UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@given(st.integers(0, 10**6), st.sampled_from(sorted(UNITS)), st.booleans())
def test_sizes_in_dockers_units(number, unit, upper):
    text = f"{number}{unit.upper() if upper else unit}"
    assert create_flags.parse_size(text) == number * UNITS[unit]


@given(st.text(max_size=12))
def test_any_size_text_parses_or_is_a_clear_error(text):
    try:
        assert create_flags.parse_size(text) >= 0
    except MinidockerError as e:
        assert "invalid size" in str(e) and "\n" not in e.hint


@given(st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", fullmatch=True))
def test_valid_names_pass(name):
    assert config.check_name(name) == name


@pytest.mark.parametrize("name", ["a", "-x", "has space", "bad/slash", "ünï", ""])
def test_invalid_names_are_refused(name):
    with pytest.raises(MinidockerError, match="Invalid container name"):
        config.check_name(name)


@given(st.lists(st.from_regex(r"[A-Z]{1,3}=[a-z]{0,3}", fullmatch=True), max_size=8),
       st.lists(st.from_regex(r"[A-Z]{1,3}=[a-z]{0,3}", fullmatch=True), max_size=8))
def test_later_env_entries_win(defaults, overrides):
    merged = dict(item.split("=", 1) for item in spec.merge_env(defaults, overrides))
    assert merged == dict(item.split("=", 1) for item in defaults + overrides)


def test_the_config_keeps_ocis_field_names(tmp_path):
    config_ = {"Image": str(tmp_path), "Cmd": ["sh"], "Hostname": "h", "User": "", "Env": None}
    host_config = {"Memory": 64 << 20, "PidsLimit": 10, "NanoCpus": 500_000_000}
    oci = spec.from_container("c0ffee" * 10, str(tmp_path), config_, host_config)
    assert oci["ociVersion"].startswith("1.")
    assert oci["process"]["args"] == ["sh"] and oci["root"]["path"] == str(tmp_path)
    assert {ns["type"] for ns in oci["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert oci["linux"]["resources"] == {"memory": {"limit": 64 << 20, "swap": 128 << 20}, "pids": {"limit": 10},
                                         "cpu": {"quota": 50000, "period": 100000},
                                         "devices": oci_defaults.default_device_rules()}  # chapter 08's
    assert [m["destination"] for m in oci["mounts"]][:2] == ["/proc", "/dev"]


@given(st.integers(1, 2000).map(lambda n: n * 10**6), st.booleans())
def test_cpus_become_a_quota_per_100ms_period(milli_cpus_times_a_million, with_fraction):
    nano = milli_cpus_times_a_million + (1 if with_fraction else 0)
    cpu = config.cpu_quota(nano)
    assert cpu["period"] == 100_000 and cpu["quota"] == nano * 100_000 // 10**9


@pytest.mark.parametrize("host_config, words", [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": -5}, "Minimum memory limit"),
    ({"NanoCpus": 10**15}, "Range of CPUs is from 0.01"),
    ({"NanoCpus": 10**6}, "Range of CPUs is from 0.01")])
def test_the_engine_refuses_what_dockers_daemon_refuses(host_config, words):
    with pytest.raises(MinidockerError, match=words):
        config.check({"Cmd": ["true"]}, host_config)


@pytest.mark.parametrize("user", ["99999999999", "4294967295", "1:99999999999", "root", "-1"])
def test_impossible_users_are_one_clear_error(user):
    with pytest.raises(MinidockerError, match="invalid user"):
        config.check({"Cmd": ["true"], "User": user}, {})
