"""The recorder of what the real docker CLI sends (tests/docker_cli.py), checked on itself."""

import pytest

from tests import docker_cli

pytestmark = pytest.mark.skipif(not docker_cli.docker_available(), reason="no docker CLI on PATH")


def test_image_and_command():
    request = docker_cli.record_create(["--name", "web", "busybox", "true"])
    assert request["name"] == "web"
    assert request["path"] == "/v1.43/containers/create?name=web"
    assert request["body"]["Image"] == "busybox" and request["body"]["Cmd"] == ["true"]


def test_memory_is_bytes_in_host_config():
    body = docker_cli.record_create(["-m", "64m", "busybox"])["body"]
    assert body["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert "Memory" not in body  # a HostConfig field, not a Config one


def test_refused_flag_raises_with_stderr():
    with pytest.raises(docker_cli.DockerCLIError) as caught:
        docker_cli.record_create(["-m", "foo", "busybox"])
    assert caught.value.returncode == 125 and "invalid size" in caught.value.stderr
