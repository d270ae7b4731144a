"""Chapter 06: the classic builder's cache (docs/06-build.md#the-cache). A rebuild reuses every
step and gives the same image; a changed COPY source invalidates that step and every one after it,
never one before; a build arg's value is part of the RUN steps' key; --no-cache builds anew; an
image removed from the store is a miss, not an error. cache_key (exercise ex-06-cache-key) at API
level, with hypothesis."""

import importlib
import json

from hypothesis import given, strategies as st

import harness
from minidocker.build.cache import cache_key

lab = importlib.import_module("chapters.06.buildlab")
mdr = lab.mdr  # the fixture
DOCS = lab.DOCS + "#the-cache"
EXERCISE = lab.DOCS + "#ex-06-cache-key"

DOCKERFILE = """\
FROM busybox
ARG FLAVOUR=plain
ENV STAGE=one
RUN echo "$FLAVOUR" > /flavour
COPY early.txt /early.txt
COPY late.txt /late.txt
RUN cat /late.txt > /late.copy
LABEL done=yes
"""


def cached(output: str) -> list[bool]:
    """For each step after FROM: did it come from the cache?"""
    return [" ---> Using cache" in s["lines"] for s in lab.steps(output)[1:]]


def test_a_rebuild_reuses_every_step_and_changes_invalidate_from_there_on(mdr, tmp_path):
    harness.need_root()
    ctx = lab.context(tmp_path, {"Dockerfile": DOCKERFILE, "early.txt": "early\n", "late.txt": "late v1\n"})
    first = lab.build(mdr, ctx, "-t", "md-cached")
    assert cached(first) == [False] * 7, f"a new store has nothing cached:\n{first}"

    again = lab.build(mdr, ctx, "-t", "md-cached")
    assert cached(again) == [True] * 7 and "Running in" not in again, (
        f"an unchanged Dockerfile and context: every step from the cache, no container run:\n{again} ({DOCS})")
    assert lab.built_id(again) == lab.built_id(first), f"and the very same image ({DOCS})"
    assert [s["id"] for s in lab.steps(again)] == [s["id"] for s in lab.steps(first)], "step by step, the same images"

    with open(f"{ctx}/late.txt", "w") as f:
        f.write("late v2\n")
    changed = lab.build(mdr, ctx, "-t", "md-cached")
    assert cached(changed) == [True, True, True, True, False, False, False], (
        f"late.txt changed: its COPY and every step after it run again, the steps before come from "
        f"the cache:\n{changed} ({DOCS})")
    run = mdr("run", "--rm", "md-cached", "cat", "/late.copy", "/flavour")
    assert run.stdout == "late v2\nplain\n", f"the new image has the new file: {run.stdout!r}"

    import os
    os.utime(f"{ctx}/early.txt", (1, 1))  # a touch changes no content: the checksum ignores times
    flavoured = lab.build(mdr, ctx, "--build-arg", "FLAVOUR=spicy")
    assert cached(flavoured) == [True, True, False, False, False, False, False], (
        f"another --build-arg value: the RUN that sees it misses (its args are in its key), and "
        f"every step after it:\n{flavoured} ({DOCS})")

    nocache = lab.build(mdr, ctx, "--no-cache")
    assert cached(nocache) == [False] * 7 and lab.built_id(nocache) != lab.built_id(changed), (
        f"--no-cache: every step is made anew (a new image: new creation times):\n{nocache} ({DOCS})")


def test_a_removed_image_is_a_miss_and_labels_are_steps(mdr, tmp_path):
    harness.need_root()
    ctx = lab.context(tmp_path, {"Dockerfile": "FROM busybox\nENV A=1\nLABEL b=2\n"})
    lab.build(mdr, ctx, "-t", "md-gone")
    lab.ok(mdr("rmi", "md-gone"), "rmi")
    lab.ok(mdr("image", "prune", "-f"), "image prune")  # the intermediate ENV image goes too
    again = lab.build(mdr, ctx, "-t", "md-gone")
    assert cached(again) == [False, False], (
        f"the cache remembers images the store no longer has: they must be misses:\n{again} ({DOCS})")

    labelled = lab.build(mdr, ctx, "--label", "z=last", "--label", "a=first")
    found = lab.steps(labelled)
    assert [s["text"] for s in found[3:]] == ['LABEL "a"="first"', 'LABEL "z"="last"'] and found[0]["of"] == 5, (
        f"--label adds LABEL steps at the end, sorted, as the classic builder does:\n{labelled}")
    assert cached(labelled)[:2] == [True, True], "the steps before them still come from the cache"
    assert lab.inspect(mdr, lab.built_id(labelled))["Config"]["Labels"] == {"b": "2", "a": "first", "z": "last"}


configs = st.dictionaries(st.sampled_from(["Cmd", "Env", "User", "WorkingDir", "Labels"]),
                          st.lists(st.text(max_size=5), max_size=3), max_size=5)
parents = st.sampled_from(["", "sha256:" + "a" * 64, "sha256:" + "b" * 64])


@given(parent=parents, config=configs)
def test_cache_key_is_a_digest_of_parent_and_config(parent, config):
    key = cache_key(parent, config)
    assert key.startswith("sha256:") and len(key) == 71, f"a sha256 digest: {key!r} ({EXERCISE})"
    shuffled = dict(reversed(list(json.loads(json.dumps(config)).items())))
    assert cache_key(parent, shuffled) == key, f"the order keys were set in does not matter ({EXERCISE})"


@given(parent=parents, other=parents, config=configs, change=st.text(min_size=1, max_size=5))
def test_cache_key_changes_with_parent_and_step(parent, other, config, change):
    key = cache_key(parent, config)
    if other != parent:
        assert cache_key(other, config) != key, f"another parent, another key ({EXERCISE})"
    assert cache_key(parent, {**config, "Cmd": ["/bin/sh", "-c", "#(nop) " + change] + config.get("Cmd", [])}) != key, (
        f"another step's command, another key ({EXERCISE})")
