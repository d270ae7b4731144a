"""Chapter 02: the union model (minidocker/unionfs/model.py) against the kernel's overlayfs.

Hypothesis builds a random stack of lower layers (files, directories, symlinks, whiteouts, opaque
directories), mounts it with a real overlay, and gives the model the same layers. Then it runs a
random sequence of operations on both: after every step, the tree seen through the mount and the
tree the model computes must be identical (names, types, contents, modes, symlink targets), and an
operation that fails must fail the same way (same errno) on both.
"""

import errno
import importlib
import os
import shutil
import stat
import tempfile
import time

import pytest
from hypothesis import Phase, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import harness
layertrees = importlib.import_module("chapters.02.layertrees")  # "02" is no Python name: no import statement
from minidocker.unionfs import overlay
from minidocker.unionfs.model import Union, is_whiteout

# How many runs. Each run mounts an overlay and compares two trees after every step: about 60 ms
# on a laptop of today, ten times that under QEMU's emulation (the lab VM) or on an old laptop.
# So this machine's measured speed sets the number of runs: as many as fit in BUDGET seconds,
# at least MIN_EXAMPLES and at most EXAMPLES. A slow machine is then slow, not red.
EXAMPLES, MIN_EXAMPLES, STEPS, BUDGET = 150, 20, 25, 8.0
MODES = [0o755, 0o700, 0o644, 0o600, 0o444, 0o000]
DOCS = "docs/02-unionfs.md"


def _on_kernel(root: str, op: str, *args) -> None:
    """The same operation, through the overlay mount, with the plain os calls a program makes."""
    at = lambda p: os.path.join(root, p)  # noqa: E731
    if op == "write":
        path, data, append = args
        with open(at(path), "ab" if append else "wb") as f:
            f.write(data)
    elif op == "symlink":
        os.symlink(args[0], at(args[1]))
    elif op == "rename":
        os.rename(at(args[0]), at(args[1]))
    elif op == "rmtree":
        shutil.rmtree(at(args[0]))
    else:  # mkdir, unlink, rmdir, chmod
        getattr(os, op)(at(args[0]), *args[1:])


def _on_model(model: Union, op: str, *args) -> None:
    if op == "rmtree":  # what `rm -r` (and shutil.rmtree) does: unlink and rmdir, deepest first
        for name in model.listdir(args[0]):
            path = os.path.join(args[0], name)
            if stat.S_ISDIR(model.lstat(path).st_mode):
                _on_model(model, "rmtree", path)
            else:
                model.unlink(path)
        model.rmdir(args[0])
    else:
        getattr(model, op)(*args)


def _outcome(call) -> str:
    try:
        call()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


class UnionMachine(RuleBasedStateMachine):
    base = None  # a pytest tmp_path, set by the test

    def __init__(self):
        super().__init__()
        self.dir = None
        self.mounted = self.agreed = False
        self.view = {}

    @initialize(stack=layertrees.stacks)
    def build(self, stack):
        self.dir = tempfile.mkdtemp(dir=self.base, prefix="ex-")
        self.lowers = layertrees.build_stack(self.dir, stack)
        for d in ("upper", "work", "merged", "model"):
            os.mkdir(os.path.join(self.dir, d))
        self.merged = os.path.join(self.dir, "merged")
        overlay.mount(self.lowers, os.path.join(self.dir, "upper"), os.path.join(self.dir, "work"), self.merged)
        self.mounted = True
        self.model = Union(self.lowers, os.path.join(self.dir, "model"))
        self.steps, self.gone = [], []

    # Paths to work on, drawn from what the model shows now.
    def _paths(self, *kinds):
        return sorted(p for p, entry in self.view.items() if entry[0] in kinds)

    def _any(self, data, *kinds):
        """An existing path of one of these kinds; "" (the root, which every op refuses) if none."""
        return data.draw(st.sampled_from(self._paths(*kinds) or [""]))

    def _existing_or_new(self, data, *kinds):
        if self._paths(*kinds) and data.draw(st.booleans()):
            return self._any(data, *kinds)
        return self._new(data)

    def _new(self, data):
        """A name that is free, or was: names deleted earlier are drawn often, because creating
        over a whiteout is where a union filesystem has the most to get right."""
        gone = [p for p in self.gone if p not in self.view and os.path.dirname(p) in ["", *self._paths("dir")]]
        if gone and data.draw(st.booleans()):
            return data.draw(st.sampled_from(gone))
        parent = data.draw(st.sampled_from([""] + self._paths("dir")))
        return os.path.join(parent, data.draw(st.sampled_from(layertrees.NAMES)))

    def both(self, op, *args):
        if not args[0 if op != "symlink" else 1]:
            return  # nothing to work on yet
        self.steps.append(f"{op}{args}")
        self.agreed = False  # until the invariant has compared the trees after this step
        if op in ("unlink", "rmdir", "rmtree", "rename"):
            self.gone.append(args[0])
        kernel = _outcome(lambda: _on_kernel(self.merged, op, *args))
        model = _outcome(lambda: _on_model(self.model, op, *args))
        assert kernel == model, (
            f"{op}{args}: overlayfs says {kernel}, the model says {model}.\n"
            f"Steps so far: {self.steps}\nSee {DOCS}#ex-02-whiteout and #ex-02-copy-up")

    @rule(data=st.data(), content=st.binary(max_size=6), append=st.booleans())
    def write(self, data, content, append):
        path = self._existing_or_new(data, "file")
        if self.view.get(path, ("file",))[0] == "file":  # open() would follow a symlink: not here
            self.both("write", path, content, append)

    @rule(data=st.data())
    def mkdir(self, data):
        self.both("mkdir", self._new(data))

    @rule(data=st.data(), link=st.sampled_from(layertrees.LINK_TARGETS))
    def symlink(self, data, link):
        self.both("symlink", link, self._new(data))

    @rule(data=st.data())
    def unlink(self, data):
        self.both("unlink", self._any(data, "file", "link", "dir"))

    @rule(data=st.data())
    def rmdir(self, data):
        self.both("rmdir", self._any(data, "dir"))

    @rule(data=st.data())
    def rm_r(self, data):
        self.both("rmtree", self._any(data, "dir"))

    @rule(data=st.data())
    def rename(self, data):
        src = self._any(data, "file", "link", "dir")
        self.both("rename", src, self._existing_or_new(data, "file", "link", "dir"))

    @rule(data=st.data(), mode=st.sampled_from(MODES))
    def chmod(self, data, mode):
        self.both("chmod", self._any(data, "file", "dir"), mode)

    @invariant()
    def same_tree(self):
        if not self.mounted:
            return
        kernel = layertrees.snapshot_dir(self.merged)
        self.view = layertrees.snapshot_model(self.model)
        assert kernel == self.view, (
            f"after {self.steps or 'mounting'}, the model shows another tree than overlayfs:\n"
            f"{layertrees.diff(kernel, self.view)}\nSee {DOCS}#ex-02-lookup")
        self.agreed = True

    def teardown(self):
        try:
            if self.mounted:
                overlay.unmount(self.merged)
                self.mounted = False
            if self.agreed:  # (after a failed step, that failure is the one to report)
                # The kernel must read the model's upper directory as the model does: mount it,
                # read-only, as the top lower layer.
                with layertrees.mounted([self.model.upper, *self.lowers], None, None, self.merged):
                    kernel = layertrees.snapshot_dir(self.merged)
                assert kernel == self.view, (
                    "overlayfs reads the model's upper directory differently than the model does "
                    f"(whiteouts must be 0:0 char devices, opaque dirs need {Union.__module__}."
                    f"OPAQUE_XATTR):\n{layertrees.diff(kernel, self.view)}\nSee {DOCS}#ex-02-whiteout")
        finally:
            if self.dir:
                shutil.rmtree(self.dir)


def test_model_matches_overlayfs(tmp_path):
    harness.need_root()
    UnionMachine.base = str(tmp_path)
    examples = examples_for(seconds_per_run(str(tmp_path)))
    # No shrinking: each attempt mounts an overlay, and shrinking a long failing run would take
    # minutes. The failure shows the whole run instead, and the scenarios below pin down each rule.
    run_state_machine_as_test(UnionMachine, settings=settings(
        max_examples=examples, stateful_step_count=STEPS, phases=[Phase.explicit, Phase.reuse, Phase.generate]))


def examples_for(seconds_per_run: float) -> int:
    return max(MIN_EXAMPLES, min(EXAMPLES, int(BUDGET / seconds_per_run)))


# One typical run, always the same: three layers, then STEPS operations of every kind.
TYPICAL_STACK = [
    {"a/a": ("file", 0o644, b"0"), "b": ("dir", True), "b/c": ("file", 0o600, b"1"), "c": ("link", "a")},
    {"a/b": ("file", 0o644, b"2"), "b/a": ("file", 0o644, b"3"), "c/a": ("file", 0o755, b"4")},
    {"a/c/a": ("file", 0o444, b"5"), "e": ("whiteout",)},
]
TYPICAL_STEPS = [
    ("write", "a/a", b"+", True), ("write", "a/d", b"new", False), ("mkdir", "d"), ("mkdir", "d/a"),
    ("write", "d/a/b", b"x", False), ("symlink", "a", "e"), ("rename", "a/b", "d/b"), ("chmod", "a", 0o700),
    ("unlink", "a/a"), ("rmtree", "a/c"), ("rmdir", "a"), ("write", "b/a", b"+", True), ("unlink", "b/c"),
    ("rename", "d/a", "d/c"), ("mkdir", "a/c"), ("write", "a/c/e", b"e", False), ("chmod", "b/a", 0o600),
    ("rmtree", "b"), ("mkdir", "b"), ("symlink", "/etc/passwd", "b/a"), ("unlink", "e"),
    ("rename", "a/d", "c"), ("write", "d/b", b"+", True), ("rmtree", "d"), ("mkdir", "d"),
]


def seconds_per_run(base: str) -> float:
    """How long one typical run takes here: the best of three, so that a moment of load from
    elsewhere does not count. (It checks the model on the way, like any run.)"""
    best = float("inf")
    for _ in range(3):
        start, machine = time.monotonic(), UnionMachine()
        try:
            machine.build(TYPICAL_STACK)
            machine.same_tree()
            for step in TYPICAL_STEPS:
                machine.both(*step)
                machine.same_tree()
        finally:
            machine.teardown()
        best = min(best, time.monotonic() - start)
    return best


@given(seconds=st.floats(min_value=0.001, max_value=60))
def test_a_slower_machine_runs_fewer_examples(seconds):
    """On the lab VM (QEMU, about 10x slower) the state machine once ran into pytest's 120 s
    timeout. Its number of runs comes from the machine's speed: within the budget when it can be."""
    examples = examples_for(seconds)
    assert MIN_EXAMPLES <= examples <= EXAMPLES
    assert examples == MIN_EXAMPLES or examples * seconds <= BUDGET, f"{examples} runs of {seconds} s overrun the budget"
    assert examples_for(seconds * 10) <= examples, "a slower machine must not run more examples"
    assert examples_for(BUDGET / EXAMPLES) == EXAMPLES, "a fast machine runs them all"


# ---------------------------------------------------------------------------------------------
# One scenario per rule: small, named, and quick to point at the piece of the model that is wrong.

def scenario(tmp_path, stack, *ops):
    """Run `ops` on a real overlay of `stack` and on the model; both trees must be equal at the
    end. Returns the model, so that the test can also look at its upper directory."""
    harness.need_root()
    lowers = layertrees.build_stack(str(tmp_path), stack)
    model = Union(lowers, str(tmp_path / "model"))
    os.mkdir(model.upper)
    with layertrees.mounted(lowers, str(tmp_path / "upper"), str(tmp_path / "work"), str(tmp_path / "mnt")) as mnt:
        for op, *args in ops:
            _on_kernel(mnt, op, *args)
            _on_model(model, op, *args)
        kernel = layertrees.snapshot_dir(mnt)
    assert layertrees.snapshot_model(model) == kernel, (
        f"after {ops}, the model and overlayfs disagree:\n{layertrees.diff(kernel, layertrees.snapshot_model(model))}")
    return model


F = lambda data, mode=0o644: ("file", mode, data)  # noqa: E731
D = lambda opaque=False: ("dir", opaque)  # noqa: E731
WH = ("whiteout",)


def test_lookup_top_layer_wins_and_directories_merge(tmp_path):
    model = scenario(tmp_path, [{"f": F(b"top"), "d/x": F(b"1")}, {"f": F(b"bottom"), "d/y": F(b"2")}])
    assert model.read("f") == b"top", f"the top-most layer that has a name wins ({DOCS}#ex-02-lookup)"
    assert model.listdir("d") == ["x", "y"], f"a directory in two layers shows both ({DOCS}#ex-02-lookup)"


def test_lookup_whiteouts_opaque_dirs_and_files_stop_the_search(tmp_path):
    model = scenario(tmp_path, [
        {"gone": WH, "d": D(opaque=True), "d/new": F(b""), "e/y": F(b"")},
        {"gone": F(b"old"), "d/old": F(b""), "e": F(b"a file hides the directory below it")},
        {"e/hidden": F(b"")},
    ])
    assert not model.exists("gone"), f"a whiteout hides the file below it ({DOCS}#ex-02-lookup)"
    assert model.listdir("d") == ["new"], f"an opaque directory hides the one below it ({DOCS}#ex-02-lookup)"
    assert model.listdir("e") == ["y"], f"a file between two directories stops the merge ({DOCS}#ex-02-lookup)"


def test_copy_up_leaves_the_lower_layer_alone(tmp_path):
    model = scenario(tmp_path, [{"d/f": F(b"lower"), "d/g": F(b"g")}],
                     ("write", "d/f", b"+upper", True), ("chmod", "d", 0o700))
    assert model.read("d/f") == b"lower+upper"
    with open(tmp_path / "lower0" / "d" / "f", "rb") as f:
        assert f.read() == b"lower", f"a write must go to a copy in the upper layer ({DOCS}#ex-02-copy-up)"
    assert os.path.isfile(tmp_path / "model" / "d" / "f"), f"copy-up copies the file, parents first ({DOCS}#ex-02-copy-up)"
    assert model.listdir("d") == ["f", "g"], f"a copied-up directory still merges with the lower one ({DOCS}#ex-02-copy-up)"


def test_delete_leaves_a_whiteout_only_when_needed(tmp_path):
    model = scenario(tmp_path, [{"lower": F(b""), "d/x": F(b"")}],
                     ("write", "new", b"", False), ("unlink", "new"), ("unlink", "lower"),
                     ("unlink", "d/x"), ("rmdir", "d"))
    up = os.path.join(model.upper, "{}")
    for name in ("lower", "d"):
        assert os.path.lexists(up.format(name)) and is_whiteout(os.lstat(up.format(name))), (
            f"deleting {name!r}, which a lower layer has, must leave a whiteout (char device 0:0) ({DOCS}#ex-02-whiteout)")
    assert not os.path.lexists(up.format("new")), (
        f"a file that only the upper layer had needs no whiteout ({DOCS}#ex-02-whiteout)")


def test_a_directory_made_again_is_opaque(tmp_path):
    model = scenario(tmp_path, [{"d/old": F(b"")}],
                     ("unlink", "d/old"), ("rmdir", "d"), ("mkdir", "d"))
    assert model.listdir("d") == [], f"'rm -r d; mkdir d' gives an empty d: it must be opaque ({DOCS}#whiteouts)"


def test_renaming_a_lower_directory_fails_with_exdev(tmp_path):
    harness.need_root()
    lowers = layertrees.build_stack(str(tmp_path), [{"d/f": F(b"")}])
    model = Union(lowers, str(tmp_path / "model"))
    os.mkdir(model.upper)
    with pytest.raises(OSError) as e:
        model.rename("d", "e")
    assert e.value.errno == errno.EXDEV, f"overlayfs without redirect_dir refuses this rename ({DOCS}#rename)"


@pytest.mark.parametrize("layers", [1, 3])
def test_read_only_union_of_layers(tmp_path, layers):
    """A union without an upper directory is read-only, like an image nobody runs."""
    lowers = [layertrees.build(str(tmp_path / f"l{i}"), {"f": ("file", 0o644, b"%d" % i)}) for i in range(layers)]
    union = Union(lowers)
    assert union.read("f") == b"0", f"the top-most layer must win the lookup ({DOCS}#ex-02-lookup)"
    with pytest.raises(OSError) as e:
        union.write("g", b"x")
    assert e.value.errno == errno.EROFS
