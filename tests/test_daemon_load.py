"""The daemon under the issue's full load: 50 clients at once, each running `run --rm`, while
others list containers. chapters/07/test_load.py runs the same with 20, to keep the learner's
suite quick; this is the project's own check of the number the chapter promises."""

import importlib

import pytest

chapter = importlib.import_module("chapters.07.conftest")
load = importlib.import_module("chapters.07.test_load")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from chapter.daemon.__wrapped__(tmp_path_factory)


@pytest.fixture(scope="module")
def busybox(daemon):
    return chapter.busybox.__wrapped__(daemon)


def test_fifty_clients_at_once(daemon, busybox):
    load.many_clients_at_once(daemon, 50)
