"""The lab tool (minidocker/lab.py), and the check that keeps the chapter suites honest.

1. Blanking, on synthetic sources (hypothesis): any indentation, any hint, several sections in a
   file; the result compiles and raises the hint; blanking twice changes nothing; docs snippets
   and earlier chapters' exercises are left as they are. Malformed markers fail with the line.
2. A student's whole flow through the CLI on a small reference of our own: init, status, grade,
   write the code, status, grade.
3. For every chapter with exercises, against the real chapter suites (issue 5):
   (a) the reference passes the chapter's suite;
   (b) blanking any ONE exercise alone makes the chapter's suite fail, and so does the whole lab;
   (c) the chapters before it still pass against the lab.
   And for chapter 01, the lab's path (issue 9): up to the first running container, the suite's
   first failure is the exercise that the page and `lab status` name next.

Every time limit here is sized by the machine's measured speed (SLOWNESS): under emulation a
chapter suite takes ten times as long, and that is slow, not a failure.

How (b) and (c) stay cheap. Running a chapter's suite once per exercise, and every earlier suite
once per lab, costs minutes and grows with every chapter. Instead, (a) runs each suite once
against an *instrumented* copy of the reference: a probe at the top of each exercise section
records which tests reach it, in whatever process it runs (pytest itself, the CLI it starts, a
container's init after pivot_root: the probes write to a shared memory map, which survives fork,
setns and pivot_root). Then
- (b) runs, against a copy with that one exercise blanked, only the tests that reached it, and
  stops at the first failure (-x). A failure proves the exercise covered. If none fails, the whole
  chapter runs (-x) before the exercise is called uncovered: the probes order the work, they
  never decide a verdict on their own.
- (c) runs, against the lab, the earlier chapters' tests that reached one of the lab's blanks. A
  test that reaches no blank runs exactly the code it ran in (a), where it passed: that is the
  one inference made, and it holds for deterministic tests.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from minidocker import lab
from minidocker.errors import MinidockerError

REPO = lab.REPO
FAILED = (1, 2)  # pytest's exit codes for "tests failed" and "interrupted by a collection error"


def _slowness(reference_seconds: float = 0.01) -> float:
    """How many times slower than the machine these time limits were sized on (at least 1): the
    best of five runs of a fixed pure-Python loop, against the 10 ms it takes there. Under QEMU's
    emulation it is about 10; an old laptop may be 2 or 3. The limits grow with it, so that a slow
    machine is slow, not red."""
    def once() -> float:
        start = time.perf_counter()
        sum(i * i for i in range(200_000))
        return time.perf_counter() - start
    return max(1.0, min(once() for _ in range(5)) / reference_seconds)


SLOWNESS = _slowness()


def budget(seconds: float) -> int:
    """A time limit sized on a fast machine, for this one."""
    return round(seconds * SLOWNESS)


# Each test here runs whole chapter suites in subprocesses: its own limit replaces pytest.ini's.
pytestmark = pytest.mark.timeout(budget(300))
FAST = ("-x", "-p", "no:randomly", f"--timeout={budget(30)}")  # stop at the first failure; no test may hang it


def M(kind: str, name: str) -> str:
    """A section marker line, spelled out here only (lab.py never spells one in a string)."""
    return f"# --8<-- [{kind}:{name}]"


# ---------------------------------------------------------------------------------------------
# 1. Blanking, on synthetic sources

PAGE = "docs/{:02d}-topic.md".format
WORDS = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=30)
HINTS = st.lists(WORDS.map(str.strip).filter(lambda h: h and not lab.LOOSE.search(h)), min_size=1, max_size=3)


@dataclasses.dataclass
class Made:
    call: str  # an expression that runs the section's function
    name: str
    chapter: int | None  # None: a docs snippet
    hint: list[str]


@st.composite
def sources(draw):
    """A module of 1 to 4 functions, each holding one section (an exercise or a docs snippet) at
    some depth: a function body, a method body, or a block inside a method. Exercises may sit
    inside a docs snippet. Every section's code returns "ref"."""
    unit = draw(st.sampled_from([" ", "  ", "    ", "\t", "        "]))
    shorts = draw(st.lists(st.from_regex(r"[a-z][a-z0-9]{0,7}(-[a-z0-9]{1,5})?", fullmatch=True),
                           min_size=1, max_size=4, unique=True))
    text, made = [], []
    for i, short in enumerate(shorts):
        chapter = draw(st.none() | st.integers(1, 9))
        name = f"ex-{chapter:02d}-{short}" if chapter else f"snip-{short}"
        hint = draw(HINTS) if chapter else []
        depth = draw(st.integers(1, 3))
        if depth == 1:
            text.append(f"def f{i}(x):")
            call = f"f{i}(1)"
        else:
            text += [f"class C{i}:", f"{unit}def f(self, x):"]
            call = f"C{i}().f(1)"
            if depth == 3:
                text.append(f"{unit * 2}if x is not None:")
        ind = unit * depth
        wrap = chapter is not None and draw(st.booleans())  # an exercise inside a docs snippet
        text += [f"{ind}before = {i}"] + ([ind + M("start", f"outer-{short}")] if wrap else [])
        text += [ind + M("start", name), *(f"{ind}# {h}" for h in hint)]
        text += [f"{ind}a = {draw(st.integers())}", "", f"{ind}if a or True:", f"{ind}{unit}a = {short!r}",
                 f"{ind}return 'ref'", ind + M("end", name)]
        text += ([ind + M("end", f"outer-{short}")] if wrap else []) + [f"{ind}return before", ""]
        made.append(Made(call, name, chapter, hint))
    return "\n".join(text), made


@given(sources(), st.integers(0, 10))
def test_blanking_replaces_exactly_the_exercises_code(source, from_chapter):
    src, made = source
    out = lab.blank(src, lambda ex: ex.chapter >= from_chapter, page=PAGE)
    blanked = {m.name for m in made if m.chapter is not None and m.chapter >= from_chapter}
    # Everything but the code of the picked exercises is kept, line for line.
    bodies = {i for s in lab.sections(src) if s.name in blanked for i in s.body}
    assert [line for line in out.split("\n") if "NotImplementedError" not in line] == \
           [line for i, line in enumerate(src.split("\n")) if i not in bodies]
    # The copy is a valid module whose blanks raise the hint and the docs link; the rest still runs.
    space = {}
    exec(compile(out, "<lab>", "exec"), space)
    for m in made:
        if m.name in blanked:
            with pytest.raises(NotImplementedError) as e:
                eval(m.call, space)
            assert e.value.args[0] == (f"exercise {m.chapter:02d} {m.name[6:]}: {' '.join(m.hint)} — "
                                       f"see {PAGE(m.chapter)}#{m.name}")
        else:
            assert eval(m.call, space) == "ref"
    # The sections are all still there, and the lab tool sees which are blank.
    lines = out.split("\n")
    assert {s.name: lab.is_blank(s, lines) for s in lab.sections(out) if s.chapter} == \
           {m.name: m.name in blanked for m in made if m.chapter}
    assert lab.blank(out, lambda ex: ex.chapter >= from_chapter, page=PAGE) == out, "blanking twice changed it"


BAD = {
    "no end": (["def f():", f"    {M('start', 'ex-01-a')}", "    # hint", "    pass"], "never ends"),
    "end without start": (["def f():", "    pass", f"    {M('end', 'ex-01-a')}"], "never started"),
    "nested exercises": (["def f():", f"    {M('start', 'ex-01-a')}", "    # hint", f"    {M('start', 'ex-01-b')}",
                          "    # hint", "    pass", f"    {M('end', 'ex-01-b')}", f"    {M('end', 'ex-01-a')}"], "nested"),
    "overlap": (["def f():", f"    {M('start', 'ex-01-a')}", "    # hint", f"    {M('start', 'snip')}", "    pass",
                 f"    {M('end', 'ex-01-a')}", f"    {M('end', 'snip')}"], "overlaps"),
    "no hint": (["def f():", f"    {M('start', 'ex-01-a')}", "    pass", f"    {M('end', 'ex-01-a')}"], "no hint"),
    "no code": (["def f():", f"    {M('start', 'ex-01-a')}", "    # hint", f"    {M('end', 'ex-01-a')}"], "no code"),
    "module level": ([M("start", "ex-01-a"), "# hint", "x = 1", M("end", "ex-01-a")], "function body"),
    "dedent": (["def f():", f"    {M('start', 'ex-01-a')}", "    # hint", "    if 1:", "        pass", "  x = 1",
                f"    {M('end', 'ex-01-a')}"], "function body"),
    "bad name": (["def f():", f"    {M('start', 'ex-1-a')}", "    # hint", "    pass",
                  f"    {M('end', 'ex-1-a')}"], "ex-NN-name"),
    "twice": ([M("start", "s"), M("end", "s"), M("start", "s"), M("end", "s")], "starts twice"),
    "trailing code": (["def f():", f"    x = 1  {M('start', 'ex-01-a')}", "    # hint", "    pass",
                       f"    {M('end', 'ex-01-a')}"], "malformed"),
}


@pytest.mark.parametrize("case", BAD)
def test_malformed_markers_fail_with_their_line(case):
    lines, what = BAD[case]
    with pytest.raises(MinidockerError, match=what) as e:
        lab.blank("\n".join(lines), page=PAGE, path="m.py")
    assert "m.py:" in str(e.value), "the error must say which file and line"


# ---------------------------------------------------------------------------------------------
# 2. A student's flow through the CLI, on a small reference: the real package plus one module
#    with one exercise of chapter 42, which our own chapters/42 tests.

DEMO = "\n".join(["def add(a, b):", '    """a + b, written by the student."""', "    " + M("start", "ex-42-add"),
                  "    # Return the sum of a and b.", "    return a + b", "    " + M("end", "ex-42-add"), ""])
DEMO_TEST = "\n".join(["from minidocker import labdemo", "", "", "def test_add():",
                       '    assert labdemo.add(2, 3) == 5, "add(2, 3) is not 5"', ""])


@pytest.fixture
def reference(tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(lab.PACKAGE, ref / "minidocker", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("conftest.py", "harness.py", "pyproject.toml"):
        shutil.copy(REPO / name, ref)
    (ref / "minidocker" / "labdemo.py").write_text(DEMO)
    (ref / "chapters" / "42").mkdir(parents=True)
    (ref / "chapters" / "42" / "test_demo.py").write_text(DEMO_TEST)
    (ref / "docs").mkdir()
    (ref / "docs" / "42-demo.md").write_text("# Demo\n\n### Add {#ex-42-add}\n")
    return ref


def minidocker(ref: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} | {"PYTHONPATH": str(ref)}
    return subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)], cwd=ref, env=env,
                          capture_output=True, text=True, timeout=budget(60))


def test_a_student_goes_from_init_to_a_passing_grade(reference, tmp_path):
    home = tmp_path / "lab"
    out = minidocker(reference, "lab", "init", home, "--from-chapter", 42)
    assert out.returncode == 0 and "1 exercise blanked (chapters: 42)" in out.stdout, out.stdout + out.stderr
    assert minidocker(reference, "lab", "init", home).returncode == 125, "init must never overwrite a lab"

    out = minidocker(reference, "lab", "status", home)
    assert "[ ] ex-42-add" in out.stdout and "next: chapter 42" in out.stdout, out.stdout
    assert "Return the sum of a and b." in out.stdout and "docs/42-demo.md#ex-42-add" in out.stdout, out.stdout
    assert f"cd {reference} && sudo .venv/bin/pytest chapters/42 --impl {home}" in out.stdout, out.stdout

    out = minidocker(reference, "lab", "grade", home, "--json", tmp_path / "r.json", "--junit", tmp_path / "j.xml")
    assert out.returncode == 1, out.stdout + out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("42"))
    assert row.split()[1:3] == ["0", "1"] and "exercise 42 add: Return the sum of a and b." in row, out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False and report["chapters"][0]["first_failure"]["test"] == "test_demo.py::test_add"
    assert [e["name"] for e in report["exercises"] if e["blank"]] == ["ex-42-add"]
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("name") == "chapter 42"

    code = home / "minidocker" / "labdemo.py"
    code.write_text("\n".join("    return a + b" if "NotImplementedError" in line else line
                              for line in code.read_text().split("\n")))
    out = minidocker(reference, "lab", "status", home)
    assert "[x] ex-42-add" in out.stdout and "no exercise is blank" in out.stdout, out.stdout
    out = minidocker(reference, "lab", "grade", home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((home / lab.REPORT).read_text())["passed"] is True


def test_pytest_with_impl_runs_the_copys_cli(reference, tmp_path):
    """`pytest chapters/NN --impl DIR`, as a student types it in the reference checkout: the
    suite's `minidocker` commands must run DIR's package, not the checkout's own."""
    (reference / "chapters" / "43").mkdir()
    (reference / "chapters" / "43" / "test_cli.py").write_text(
        'def test_version(md):\n    assert "lab-copy" in md("version").stdout\n')
    init = copy_package(tmp_path / "lab") / "__init__.py"
    init.write_text(init.read_text().replace("__version__ = ", "__version__ = 'lab-copy' or "))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "PYTHONSAFEPATH")}
    out = subprocess.run([sys.executable, "-m", "pytest", "chapters/43", "--impl", str(tmp_path / "lab"), "-q"],
                         cwd=reference, env=env, capture_output=True, text=True, timeout=budget(60))
    assert out.returncode == 0, f"the CLI under test was the reference's, not the lab's:\n{out.stdout[-1500:]}"


def test_grade_without_a_lab_is_one_line(tmp_path):
    out = minidocker(REPO, "lab", "grade", tmp_path)
    assert out.returncode == 125 and out.stderr.count("\n") == 1 and "lab init" in out.stderr, out.stderr


def test_init_refuses_a_chapter_without_exercises(tmp_path):
    last = max(s.chapter for s, _ in lab.exercises(lab.PACKAGE))
    out = minidocker(REPO, "lab", "init", tmp_path / "new" / "lab", "--from-chapter", last + 1)
    assert out.returncode == 125 and out.stderr.count("\n") == 1, out.stdout + out.stderr
    assert f"no exercises from chapter {last + 1:02d} on" in out.stderr and f"{last:02d}" in out.stderr, out.stderr
    assert not (tmp_path / "new").exists(), "a refused init must leave nothing behind"


# ---------------------------------------------------------------------------------------------
# 3. The real chapters: (a), (b) and (c)

try:
    EXERCISES, MARKER_ERROR = [s for s, _ in lab.exercises(lab.PACKAGE)], None
except MinidockerError as e:  # reported by test_markers_are_well_formed, not as a collection error
    EXERCISES, MARKER_ERROR = [], e
CHAPTERS = {int(d.name): d for d in lab.chapters()}
LAB_CHAPTERS = sorted({ex.chapter for ex in EXERCISES})
PROBED = [c for c in CHAPTERS if LAB_CHAPTERS and c <= max(LAB_CHAPTERS)]
SLOTS = 1 << 16  # hash buckets per exercise for the tests that reach it; a collision only adds a test

PROBE = f'''"""Written by tests/test_lab.py into an instrumented copy: which tests reach which exercise."""
import mmap, os, zlib

with open(os.path.join(os.path.dirname(__file__), "_lab_hits"), "r+b") as f:
    _hits = mmap.mmap(f.fileno(), 0)  # MAP_SHARED: survives fork, setns and pivot_root


def hit(exercise):
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]  # "" outside any test
    _hits[exercise * {SLOTS} + zlib.crc32(test.encode()) % {SLOTS}] = 1
'''
COLLECT = '''import os

def pytest_collection_finish(session):
    with open(os.environ["MD_LAB_TESTS"], "w") as f:
        f.write("\\n".join(item.nodeid for item in session.items))
'''


def bucket(test: str) -> int:
    return zlib.crc32(test.encode()) % SLOTS


@dataclasses.dataclass
class Probe:
    proc: subprocess.CompletedProcess
    tests: list[str]  # node ids, in the suite's order
    reached: dict[str, set[str]]  # exercise -> the tests that ran its code

    def tests_reaching(self, names) -> list[str]:
        return [t for t in self.tests if any(t in self.reached[n] for n in names)]


def copy_package(dest: Path, package: Path = lab.PACKAGE) -> Path:
    shutil.copytree(package, dest / "minidocker", ignore=shutil.ignore_patterns("__pycache__"))
    return dest / "minidocker"


def instrument(dest: Path, exercises: list, package: Path) -> None:
    """dest/minidocker: the package, plus a probe call as the first statement of each exercise."""
    copy, index = copy_package(dest, package), {ex.name: i for i, ex in enumerate(exercises)}
    for path in copy.rglob("*.py"):
        text = path.read_text()
        lines = text.split("\n")
        for ex in reversed([s for s in lab.sections(text) if s.name in index]):
            first = next(lines[i] for i in ex.body if lines[i].strip())
            call = f"__import__('minidocker')._lab_probe.hit({index[ex.name]})"
            lines.insert(ex.body.start, lab._indent(first) + call)
        path.write_text("\n".join(lines))
    (copy / "_lab_probe.py").write_text(PROBE)
    (copy / "_lab_hits").write_bytes(bytes(SLOTS * len(exercises)))
    with open(copy / "__init__.py", "a") as f:  # map the probes' memory before any fork
        f.write("\nfrom minidocker import _lab_probe  # noqa: E402\n")


def probe(chapter: Path, tmp: Path, exercises: list, package: Path = lab.PACKAGE) -> Probe:
    """Run the chapter's suite against the instrumented package: which test reaches which exercise."""
    instrument(tmp, exercises, package)
    (tmp / "md_lab_collect.py").write_text(COLLECT)
    proc = lab.run_chapter(chapter, tmp, "-p", "md_lab_collect", f"--timeout={budget(120)}",
                           env={"PYTHONPATH": str(tmp), "MD_LAB_TESTS": str(tmp / "tests.txt")})
    tests = (tmp / "tests.txt").read_text().split("\n") if (tmp / "tests.txt").exists() else []
    hits, reached = (tmp / "minidocker" / "_lab_hits").read_bytes(), {}
    for i, ex in enumerate(exercises):
        row = hits[i * SLOTS:(i + 1) * SLOTS]
        # A hit outside any test (at collection, or in a process that dropped the environment)
        # could belong to any test: count it for all of them.
        reached[ex.name] = set(tests) if row[bucket("")] else {t for t in tests if row[bucket(t)]}
    return Probe(proc, tests, reached)


def fails_without(ex, ref: Probe, chapter: Path, tmp: Path, package: Path = lab.PACKAGE) -> bool:
    """(b) for one exercise: does the chapter's suite fail with just that exercise blanked?"""
    copy = copy_package(tmp, package)
    path = copy.parent / ex.path
    path.write_text(lab.blank(path.read_text(), lambda s: s.name == ex.name, page=PAGE))
    first = ref.tests_reaching([ex.name])
    if first and lab.run_chapter(chapter, tmp, *FAST, tests=first).returncode in FAILED:
        return True
    return lab.run_chapter(chapter, tmp, *FAST).returncode in FAILED  # the probes missed? the whole suite decides


@pytest.fixture(scope="session")
def probes(tmp_path_factory):
    """probes(N): chapter N's suite, run once against the instrumented reference (cached)."""
    done = {}

    def get(chapter: int) -> Probe:
        if chapter not in done:
            done[chapter] = probe(CHAPTERS[chapter], tmp_path_factory.mktemp(f"probe-{chapter:02d}"), EXERCISES)
        return done[chapter]
    return get


def tail(proc) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])


def test_markers_are_well_formed():
    assert MARKER_ERROR is None, f"{MARKER_ERROR} (docs/teachers.md#markers)"


def test_exercise_names_are_unique():
    names = [ex.name for ex in EXERCISES]
    assert len(names) == len(set(names)), f"two exercises share a name (and a docs anchor): {sorted(names)}"


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c >= 1])
def test_every_chapter_has_exercises(chapter):
    assert chapter in LAB_CHAPTERS, \
        f"chapters/{chapter:02d} has a suite but minidocker/ has no ex-{chapter:02d}-* section"


@pytest.mark.parametrize("chapter", LAB_CHAPTERS)
def test_every_exercise_has_a_suite(chapter):
    # (Its docs heading {#ex-NN-name} is checked by tests/test_docs.py.)
    assert chapter in CHAPTERS, \
        f"minidocker/ has ex-{chapter:02d}-* exercises but there is no chapters/{chapter:02d} suite"


@pytest.mark.parametrize("chapter", PROBED)
def test_a_reference_passes_its_chapter(chapter, probes):
    ref = probes(chapter)
    assert ref.proc.returncode == 0, f"the reference fails chapters/{chapter:02d}:\n{tail(ref.proc)}"
    assert ref.tests, f"chapters/{chapter:02d} collected no test"


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_b_each_exercise_blanked_alone_fails_its_chapter(ex, probes, tmp_path):
    assert ex.chapter in CHAPTERS, f"no chapters/{ex.chapter:02d} suite for {ex.name}"
    ref = probes(ex.chapter)
    assert ref.proc.returncode == 0, f"the reference itself fails chapters/{ex.chapter:02d}: see test_a"
    assert fails_without(ex, ref, CHAPTERS[ex.chapter], tmp_path), (
        f"blanking {ex.name} ({ex.path}:{ex.start + 1}) leaves chapters/{ex.chapter:02d} passing: "
        f"no test needs that code. Add a test that fails without it (docs/teachers.md#add-an-exercise). "
        f"Tests that reached it: {ref.tests_reaching([ex.name]) or 'none'}")


@pytest.mark.parametrize("chapter", LAB_CHAPTERS)
def test_b_the_lab_fails_its_chapter(chapter, probes, tmp_path):
    ref = probes(chapter)
    lab.init(str(tmp_path), chapter)
    names = [ex.name for ex in EXERCISES if ex.chapter == chapter]
    first = ref.tests_reaching(names)
    assert first, f"no test of chapters/{chapter:02d} reaches any of its exercises {names}"
    proc = lab.run_chapter(CHAPTERS[chapter], tmp_path, *FAST, tests=first)
    assert proc.returncode in FAILED, f"the lab from chapter {chapter:02d} passes chapters/{chapter:02d}:\n{tail(proc)}"


@pytest.mark.parametrize("chapter", LAB_CHAPTERS)
def test_c_earlier_chapters_pass_against_the_lab(chapter, probes, tmp_path):
    lab.init(str(tmp_path), chapter)
    blanks = [ex.name for ex in EXERCISES if ex.chapter >= chapter]
    for earlier in (c for c in CHAPTERS if c < chapter):
        ref = probes(earlier)
        assert ref.proc.returncode == 0, f"the reference itself fails chapters/{earlier:02d}: see test_a"
        reaching = ref.tests_reaching(blanks)
        if not reaching:  # no test of that chapter runs blanked code: it passes as it did in (a)
            continue
        proc = lab.run_chapter(CHAPTERS[earlier], tmp_path, f"--timeout={budget(30)}", tests=reaching)
        assert proc.returncode == 0, (
            f"chapters/{earlier:02d} fails against the lab from chapter {chapter:02d}: its tests "
            f"{reaching} run code of a later chapter's exercises ({blanks}).\n{tail(proc)}")


FIRST_CONTAINER = "ex-01-pivot-root"  # the last exercise that `run` needs before a container starts


def test_the_lab_path_follows_the_page(probes, tmp_path):
    """The page, `lab status`'s next and the suite agree, up to the first running container: with
    the exercises before it written, the first test of chapter 01 that reaches a blank stops at
    the exercise that the page and `lab status` name next, with its hint (issue 9)."""
    order = [ex for ex in EXERCISES if ex.chapter == 1]  # sorted as the page presents them
    names, ref = [ex.name for ex in order], probes(1)
    assert ref.proc.returncode == 0, "the reference itself fails chapters/01: see test_a"
    for k, ex in enumerate(order[:names.index(FIRST_CONTAINER) + 1]):
        step, blanks = tmp_path / f"step-{k}", set(names[k:])
        for path in copy_package(step).rglob("*.py"):
            text = path.read_text()
            if any(s.name in blanks for s in lab.sections(text)):
                path.write_text(lab.blank(text, lambda s: s.name in blanks, page=PAGE))
        shown = next(e["name"] for e in lab.status(str(step)) if e["blank"])
        assert shown == ex.name, f"with {names[:k]} written, lab status names {shown} next, the page {ex.name}"
        reaching = ref.tests_reaching(blanks)  # in the suite's order; -x: up to the first that fails
        assert reaching, f"no test of chapters/01 reaches any of {sorted(blanks)}"
        proc = lab.run_chapter(CHAPTERS[1], step, *FAST, tests=reaching)
        assert proc.returncode in FAILED and f"exercise 01 {ex.short}:" in proc.stdout, (
            f"with {names[:k]} written, the first test that fails must stop at {ex.name}, the page's "
            f"next, and show its hint:\n{tail(proc)}")


UNTESTED = "\n".join(["def unused():", "    " + M("start", "ex-42-unused"), "    # Nothing tests this.",
                      "    return 1", "    " + M("end", "ex-42-unused"), ""])
IN_A_SUBPROCESS = """

def test_add_in_a_subprocess():
    import os, subprocess, sys, harness
    code = "from minidocker import labdemo; assert labdemo.add(1, 1) == 2"
    env = dict(os.environ, PYTHONPATH=harness.IMPL)
    assert subprocess.run([sys.executable, "-P", "-c", code], env=env).returncode == 0, "add(1, 1) is not 2"
"""


def test_the_check_itself_catches_an_untested_exercise(reference, tmp_path):
    """(b) must be able to fail: an exercise that no test needs is reported, one that a test
    needs only in a subprocess is not."""
    (reference / "minidocker" / "labdemo.py").write_text(DEMO + UNTESTED)
    (reference / "chapters" / "42" / "test_demo.py").write_text(DEMO_TEST + IN_A_SUBPROCESS)
    package, chapter = reference / "minidocker", reference / "chapters" / "42"
    exercises = [s for s, _ in lab.exercises(package) if s.chapter == 42]
    ref = probe(chapter, tmp_path / "probe", exercises, package)
    assert ref.proc.returncode == 0, tail(ref.proc)
    tests = "chapters/42/test_demo.py::"
    assert ref.reached == {"ex-42-add": {tests + "test_add", tests + "test_add_in_a_subprocess"}, "ex-42-unused": set()}
    add, unused = exercises
    assert fails_without(add, ref, chapter, tmp_path / "add", package)
    assert not fails_without(unused, ref, chapter, tmp_path / "unused", package)


def test_the_hint_is_the_first_paragraph_of_comments():
    source = (
        "def f():\n"
        "    # --8<-- [start:ex-01-demo]\n"
        "    # Do the thing.\n"
        "    #\n"
        "    # Why it matters: a longer story for the reader of the reference.\n"
        "    return 1\n"
        "    # --8<-- [end:ex-01-demo]\n"
    )
    (ex,) = lab.sections(source, "demo.py")
    assert ex.hint == ["Do the thing."], "an empty '#' line ends the hint"
    assert "longer story" not in lab.blank(source, path="demo.py")
