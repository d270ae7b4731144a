"""Classroom labs: a student copy of the package with the exercises blanked, graded by the suites.

- `minidocker lab init DIR --from-chapter N` copies this package to DIR/minidocker and replaces the
  code of every exercise section of chapter N and later with a `raise NotImplementedError` that
  carries the section's hint and the docs section that explains it.
- The student fills the sections in and runs the same chapter suites against the copy:
  `pytest chapters/NN --impl DIR` for one chapter, `minidocker lab grade DIR` for all of them,
  with a table, a JSON report for the teacher and JUnit XML for CI systems.
- `minidocker lab status DIR` lists the exercises still blank and the chapter to do next.

Exercise sections use the docs' snippet-section markers (pymdownx.snippets), so the code that the
docs show and the code that a student writes are one and the same: see docs/teachers.md.
"""

import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from minidocker.errors import MinidockerError

PACKAGE = Path(__file__).resolve().parent  # the package this code runs from
REPO = PACKAGE.parent  # a reference checkout keeps chapters/ and docs/ next to the package
MANIFEST = "lab.json"  # written into DIR by `lab init`: what was blanked, from which reference
REPORT = "lab-report.json"  # written into DIR by `lab grade`: what the teacher collects


# --8<-- [start:markers]
# A section starts and ends with a marker, a comment line of its own (docs/teachers.md#markers).
# MARKER is what we accept. LOOSE is what pymdownx.snippets would take for a marker: it allows
# text before and after, so this file never spells a marker out in a string. A line that is LOOSE
# but not MARKER is an error, not something to skip: the docs would cut there, the lab would not.
_NAME = r"(?P<name>[a-z][-_0-9a-z]*)"
MARKER = re.compile(rf"^(?P<indent>[ \t]*)#[ \t]*-+8<-+[ \t]+\[[ \t]*(?P<kind>start|end)[ \t]*:"
                    rf"[ \t]*{_NAME}[ \t]*\][ \t]*\r?$", re.I)
LOOSE = re.compile(r"-+8<-+[ \t]+\[[ \t]*(start|end)[ \t]*:", re.I)
# An exercise of chapter NN is the section `ex-NN-name`; every other section is a docs snippet.
EXERCISE = re.compile(r"^ex-(?P<chapter>\d\d)-(?P<short>[a-z0-9][-_a-z0-9]*)$")
BLANK = 'raise NotImplementedError("exercise '  # how a blanked section's code begins


@dataclasses.dataclass
class Section:
    name: str
    path: str  # the file, for messages
    start: int  # 0-based line numbers of the two markers
    end: int
    hint: list[str] = dataclasses.field(default_factory=list)  # the comment lines after start

    @property
    def chapter(self) -> int | None:
        m = EXERCISE.match(self.name)
        return int(m["chapter"]) if m else None

    @property
    def short(self) -> str:
        return EXERCISE.match(self.name)["short"]

    @property
    def body(self) -> range:
        """The lines that a student writes: after the hint, before the end marker."""
        return range(self.start + 1 + len(self.hint), self.end)


def sections(text: str, path: str = "<source>") -> list[Section]:
    """Every marked section of a source file, checked: markers pair up, exercises don't nest or
    overlap another section, and each exercise has a hint and code inside a function body."""
    lines, found, open_ = text.split("\n"), [], {}
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        where = f"{path}:{i + 1}"
        if not m:
            if LOOSE.search(line):
                raise MinidockerError(f"{where}: malformed section marker {line.strip()!r}",
                                      "a marker is a comment line of its own, see docs/teachers.md#markers")
            continue
        name = m["name"]
        if EXERCISE.match(name) is None and name.lower().startswith("ex-"):
            raise MinidockerError(f"{where}: bad exercise name {name!r}", "name exercises ex-NN-name, NN the chapter")
        if m["kind"].lower() == "start":
            if name in open_ or any(s.name == name for s in found):
                raise MinidockerError(f"{where}: section {name!r} starts twice", "section names are unique in a file")
            if EXERCISE.match(name) and any(EXERCISE.match(o) for o in open_):
                raise MinidockerError(f"{where}: exercise {name!r} is nested in another exercise",
                                      "end the outer exercise first")
            open_[name] = i
        elif name not in open_:
            raise MinidockerError(f"{where}: section {name!r} ends but never started", "add its start marker")
        else:
            found.append(Section(name, path, open_.pop(name), i))
    if open_:
        name, i = next(iter(open_.items()))
        raise MinidockerError(f"{path}:{i + 1}: section {name!r} never ends", f"add its end marker, [end:{name}]")
    found.sort(key=lambda s: s.start)
    for ex in (s for s in found if s.chapter is not None):
        _check_exercise(ex, lines, found)
    return found


def _check_exercise(ex: Section, lines: list[str], found: list[Section]) -> None:
    where = f"{ex.path}:{ex.start + 1}: exercise {ex.name!r}"
    inside = range(ex.start + 1, ex.end)
    for other in found:  # a section half in, half out would lose one of its markers when blanked
        if other is not ex and (other.start in inside) != (other.end in inside):
            raise MinidockerError(f"{where} overlaps section {other.name!r}", "nest sections fully, or not at all")
    # The hint is the first paragraph of comments: it ends at the code, or at an empty "#" line
    # (what follows that is explanation for the reader of the reference, not the hint).
    i = ex.start + 1
    while i < ex.end and lines[i].strip().startswith("#") and lines[i].strip() != "#" and not MARKER.match(lines[i]):
        ex.hint.append(lines[i].strip()[1:].strip())
        i += 1
    if not " ".join(ex.hint).strip():
        raise MinidockerError(f"{where} has no hint", "its first lines must be a comment saying what to do")
    code = [lines[j] for j in ex.body if lines[j].strip()]
    if not code:
        raise MinidockerError(f"{where} has no code", "put the reference solution between the hint and the end")
    indent = _indent(code[0])
    if not indent or any(not line.startswith(indent) for line in code):
        raise MinidockerError(f"{where}: its code must be whole statements in a function body",
                              "indent every line at least as much as the first")
# --8<-- [end:markers]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def docs_page(chapter: int, repo: Path = REPO) -> str:
    """docs/NN-topic.md, the page whose headings carry the anchors `{#ex-NN-name}`."""
    pages = sorted((repo / "docs").glob(f"{chapter:02d}-*.md"))
    if len(pages) != 1:
        raise MinidockerError(f"chapter {chapter:02d} has {len(pages)} docs pages docs/{chapter:02d}-*.md",
                              "each chapter with exercises needs exactly one page")
    return pages[0].relative_to(repo).as_posix()


# --8<-- [start:blank]
def message(ex: Section, page: str) -> str:
    """What the student sees when the blank runs: what to do, and where the docs explain it."""
    return f"exercise {ex.chapter:02d} {ex.short}: {' '.join(ex.hint)} — see {page}#{ex.name}"


def blank(text: str, which=lambda ex: True, page=docs_page, path: str = "<source>") -> str:
    """The source with the code of each exercise that `which(section)` picks replaced by a raise,
    at the code's own indentation. Markers, hint and everything else stay as they are, so blanking
    twice changes nothing, and the docs snippets of the copy still resolve."""
    lines = text.split("\n")
    for ex in reversed(sections(text, path)):  # bottom up: earlier line numbers stay valid
        if ex.chapter is None or not which(ex):
            continue
        indent = _indent(next(lines[i] for i in ex.body if lines[i].strip()))
        # json.dumps makes a valid Python string literal: its escapes (\" \\ \n \uXXXX) are Python's.
        literal = json.dumps(message(ex, page(ex.chapter)), ensure_ascii=False)
        lines[ex.body.start:ex.body.stop] = [f"{indent}raise NotImplementedError({literal})"]
    return "\n".join(lines)


def is_blank(ex: Section, lines: list[str]) -> bool:
    """Still the lab's raise? A student may write code around it; it only counts once it's gone."""
    return any(lines[i].strip().startswith(BLANK) for i in ex.body)
# --8<-- [end:blank]


def exercises(package: Path) -> list[tuple[Section, list[str]]]:
    """Every exercise in the package's modules, with its file's lines, in the order in which the
    docs present them: by chapter, then by the place of its heading on the chapter's page."""
    found, reference = [], Path(_manifest(package.parent)["reference"])  # where the docs are
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(package.parent).as_posix()
        found += [(s, text.split("\n")) for s in sections(text, rel) if s.chapter is not None]
    return sorted(found, key=lambda pair: (pair[0].chapter, _place_in_docs(pair[0], reference)))


def _place_in_docs(ex: Section, reference: Path) -> int:
    try:
        page = (reference / docs_page(ex.chapter, reference)).read_text()
    except MinidockerError:  # no page for that chapter yet: keep the files' order
        return sys.maxsize
    anchor = re.search(r"\{[^}\n]*#" + re.escape(ex.name) + r"[\s}]", page)  # {#ex-01-x} or {#ex-01-x .cls}
    return anchor.start() if anchor else sys.maxsize


# --8<-- [start:init]
def init(dest: str, from_chapter: int = 1) -> dict:
    """Write the student copy: DIR/minidocker with the exercises blanked, and DIR/lab.json."""
    root = Path(dest).resolve()
    if (root / "minidocker").exists():
        raise MinidockerError(f"{root} already holds a lab", "choose a new directory: a lab is never overwritten")
    have = sorted({ex.chapter for ex, _ in exercises(PACKAGE)})
    if not any(chapter >= from_chapter for chapter in have):  # a lab with nothing to write
        raise MinidockerError(f"no exercises from chapter {from_chapter:02d} on",
                              f"the chapters with exercises are {', '.join(f'{c:02d}' for c in have) or 'none'}")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".md-lab-", dir=root.parent) as tmp:
        copy = Path(tmp) / "minidocker"  # built aside, then moved in: no half-made lab on error
        shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for path in sorted(copy.rglob("*.py")):
            rel, text = path.relative_to(tmp).as_posix(), path.read_text()
            new = blank(text, lambda ex: ex.chapter >= from_chapter, path=rel)
            try:  # an exercise that is not made of whole statements shows up here
                compile(new, rel, "exec")
            except SyntaxError as e:
                raise MinidockerError(f"blanking leaves {rel} invalid at line {e.lineno}: {e.msg}",
                                      "an exercise section must hold whole statements") from None
            path.write_text(new)
        blanked = [{"name": s.name, "chapter": s.chapter, "file": s.path, "line": s.start + 1,
                    "hint": " ".join(s.hint), "docs": f"{docs_page(s.chapter)}#{s.name}"}
                   for s, _ in exercises(copy) if s.chapter >= from_chapter]
        made = [] if root.exists() else [root]
        root.mkdir(parents=True, exist_ok=True)
        copy.rename(root / "minidocker")
    manifest = {"from_chapter": from_chapter, "reference": str(REPO), "commit": _commit(),
                "created": _now(), "exercises": blanked}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _give_to_sudo_user(*made, root / "minidocker", root / MANIFEST)
    return manifest
# --8<-- [end:init]


def _give_to_sudo_user(*paths: Path) -> None:
    """Under sudo (setup and grading need root), hand what we wrote to the user who ran sudo: the
    student edits the lab as themselves, not as root. Only our own files: DIR may hold others."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if os.geteuid() == 0 and uid and gid:
        for path in paths:
            for p in (path, *path.rglob("*")) if path.is_dir() else (path,):
                os.chown(p, int(uid), int(gid))


def _commit() -> str | None:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _lab(dest: str) -> Path:
    root = Path(dest).resolve()
    if not (root / "minidocker").is_dir():
        raise MinidockerError(f"{root} holds no minidocker/ package", "create a lab first: minidocker lab init DIR")
    return root


def _manifest(lab: Path) -> dict:
    path = lab / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"reference": str(REPO), "exercises": []}


def status(dest: str) -> list[dict]:
    """Each exercise of the lab: its place, its hint, its docs, and whether it is still blank."""
    root = _lab(dest)
    docs = {e["name"]: e["docs"] for e in _manifest(root)["exercises"]}
    return [{"name": s.name, "chapter": s.chapter, "file": s.path, "line": s.start + 1,
             "hint": " ".join(s.hint), "docs": docs.get(s.name), "blank": is_blank(s, lines)}
            for s, lines in exercises(root / "minidocker")]


# ---------------------------------------------------------------------------------------------
# Grading: the chapter suites of the reference, run against the student's copy

def chapters(lab: Path | None = None) -> list[Path]:
    """chapters/NN directories that hold a suite. They live in the reference checkout, next to the
    package; a lab run from its own copy finds them through the reference its lab.json names."""
    for base in (REPO, Path(_manifest(lab)["reference"]) if lab else REPO):
        if (base / "chapters").is_dir():
            return sorted(d for d in (base / "chapters").iterdir()
                          if re.fullmatch(r"\d\d", d.name) and any(d.glob("test_*.py")))
    raise MinidockerError(f"no chapters/ next to {PACKAGE}",
                          "run the reference checkout's own: cd REFERENCE && sudo .venv/bin/minidocker lab grade DIR")


# --8<-- [start:grade]
def run_chapter(chapter: Path, impl: Path, *args: str, tests=(), env=None) -> subprocess.CompletedProcess:
    """`pytest chapters/NN --impl DIR ARGS`, from the reference checkout so that its conftest.py
    (which understands --impl) is the one that loads. `tests` may pick node ids of the chapter."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINIDOCKER_IMPL", "PYTEST_CURRENT_TEST")} | (env or {})
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no root-owned __pycache__ in the student's lab
    # --tb=short: the report keeps the failing line and the hint, not pages of source.
    return subprocess.run([sys.executable, "-m", "pytest", *(tests or [str(chapter)]), "--impl", str(impl),
                           "-q", "--tb=short", "-p", "no:cacheprovider", *args],
                          cwd=chapter.parent.parent, env=env, capture_output=True, text=True)


def results(junit: Path) -> list[dict]:
    """One {test, outcome, message} per test case of pytest's JUnit XML."""
    found = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")[2:]  # drop "chapters.NN."
        test = "::".join([f"{parts[0]}.py", *parts[1:], case.get("name")] if parts else [case.get("name")])
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "skipped" if child.tag == "skipped" else "failed"
                text = (child.get("message") or child.text or child.tag).strip()
        found.append({"test": test, "outcome": outcome, "message": text})
    return found


def grade(dest: str, json_path: str | None = None, junit_path: str | None = None, out=sys.stdout) -> dict:
    """Run every chapter's suite against the lab; print a table; write the reports."""
    lab = _lab(dest)
    report = {"lab": str(lab), "reference": str(REPO), "commit": _commit(), "graded": _now(),
              "chapters": [], "exercises": status(dest)}
    suites = ET.Element("testsuites")
    print(f"{'chapter':<9}{'passed':>7}{'failed':>7}{'skipped':>8}  first failure", file=out)
    with tempfile.TemporaryDirectory() as tmp:
        for chapter in chapters(lab):
            junit = Path(tmp) / f"{chapter.name}.xml"
            proc = run_chapter(chapter, lab, f"--junitxml={junit}")
            if junit.exists():
                tests = results(junit)
                for suite in ET.parse(junit).getroot().iter("testsuite"):
                    suite.set("name", f"chapter {chapter.name}")
                    suites.append(suite)
            else:  # pytest stopped before running anything (a usage error, a broken conftest)
                tests = [{"test": "(pytest)", "outcome": "failed",
                          "message": (proc.stderr.strip() or proc.stdout.strip() or "pytest failed").splitlines()[-1]}]
            count = {o: sum(t["outcome"] == o for t in tests) for o in ("passed", "failed", "skipped")}
            first = next((t for t in tests if t["outcome"] == "failed"), None)
            report["chapters"].append({"chapter": chapter.name, **count, "first_failure": first, "tests": tests})
            why = f"{first['test']}: {first['message'].splitlines()[0]}" if first else ""
            print(f"{chapter.name:<9}{count['passed']:>7}{count['failed']:>7}{count['skipped']:>8}  {why[:100]}",
                  file=out, flush=True)
    report["passed"] = all(c["failed"] == 0 for c in report["chapters"])
    Path(json_path or lab / REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if junit_path:
        ET.ElementTree(suites).write(junit_path, encoding="utf-8", xml_declaration=True)
    _give_to_sudo_user(Path(json_path or lab / REPORT))
    return report
# --8<-- [end:grade]


# ---------------------------------------------------------------------------------------------
# The command line: lab init / grade / status

def cmd_init(args) -> int:
    done = init(args.dir, args.from_chapter)["exercises"]
    chapters_ = ", ".join(sorted({f"{e['chapter']:02d}" for e in done})) or "none"
    print(f"lab written to {Path(args.dir).resolve()}: {len(done)} exercise{'' if len(done) == 1 else 's'} "
          f"blanked (chapters: {chapters_})")
    print(f"next: minidocker lab status {args.dir}")
    return 0


def cmd_status(args) -> int:
    lab, todo = _lab(args.dir), status(args.dir)
    for chapter in sorted({e["chapter"] for e in todo}):
        mine = [e for e in todo if e["chapter"] == chapter]
        print(f"chapter {chapter:02d}: {sum(not e['blank'] for e in mine)} of {len(mine)} written")
        for e in mine:
            print(f"  [{' ' if e['blank'] else 'x'}] {e['name']:<28} {e['file']}:{e['line']}")
    blank = [e for e in todo if e["blank"]]
    if not blank:
        print(f"no exercise is blank: grade your lab with `minidocker lab grade {args.dir}`")
        return 0
    e = blank[0]
    print(f"\nnext: chapter {e['chapter']:02d}, {e['name']} in {lab / e['file']}:{e['line']}\n  {e['hint']}")
    if e["docs"]:
        print(f"  read:  {e['docs']}")
    reference = _manifest(lab)["reference"]
    print(f"  check: cd {reference} && sudo .venv/bin/pytest chapters/{e['chapter']:02d} --impl {lab}")
    return 0


def cmd_grade(args) -> int:
    if os.geteuid() != 0:
        print("note: not root, so the kernel tests will be skipped (run it with sudo)", file=sys.stderr)
    report = grade(args.dir, args.json, args.junit)
    print(f"report: {args.json or Path(report['lab']) / REPORT}" + (f", JUnit XML: {args.junit}" if args.junit else ""))
    return 0 if report["passed"] else 1


def add_commands(sub, words=()) -> None:
    lab = sub.add_parser("lab", help="classroom labs: hand out a student copy, check it, grade it")
    cmds = lab.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)
    p = cmds.add_parser("init", help="write a student copy of the package with the exercises blanked")
    p.add_argument("dir")
    p.add_argument("--from-chapter", type=int, default=1, metavar="N",
                   help="blank the exercises of chapter N and later (default 1: all of them)")
    p.set_defaults(func=cmd_init)
    p = cmds.add_parser("grade", help="run every chapter's suite against the lab; print a table")
    p.add_argument("dir")
    p.add_argument("--json", metavar="FILE", help=f"write the report here (default DIR/{REPORT})")
    p.add_argument("--junit", metavar="FILE", help="also write the tests' JUnit XML here")
    p.set_defaults(func=cmd_grade)
    p = cmds.add_parser("status", help="which exercises are still blank, which chapter is next")
    p.add_argument("dir")
    p.set_defaults(func=cmd_status)
