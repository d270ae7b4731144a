"""The docs site builds strictly, shows what the commands really print, works offline, and every
exercise's hint link lands on a heading.

- `mkdocs build --strict` already fails on a missing snippet file or section (pymdownx.snippets
  `check_paths`) and on a link to a missing page or anchor (mkdocs.yml `validation`).
- Command output on the pages is included from docs/transcripts/, which `make transcripts` writes
  from real runs (scripts/transcripts.py). Here the commands run again, and a transcript that no
  longer matches fails, as does a console block typed by hand.
- A built page loads nothing from another host: learners may be offline, or behind a firewall
  that blocks the CDN (mermaid.js is served by the site itself).
- What the build cannot see is the link that the lab tool writes into each blanked exercise,
  `docs/NN-topic.md#ex-NN-name`: it lives in a student's code, not in the docs. So every `ex-NN-*`
  section of minidocker/*.py must have its `{#ex-NN-name}` heading on chapter NN's page.
"""

import hashlib
import html.parser
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import harness

REPO = Path(harness.REPO)
_spec = importlib.util.spec_from_file_location("transcripts", REPO / "scripts" / "transcripts.py")
transcripts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(transcripts)

# A section start marker, as pymdownx.snippets and the lab tool read it: `# --8<-- [start:NAME]`.
EXERCISE_START = re.compile(r"^[ \t]*#[ \t]*-+8<-+[ \t]+\[start:(ex-\d\d-[-_a-z0-9]+)\]", re.M)
# A heading with an explicit attr_list id among its attributes: `### Pivot {#ex-01-pivot-root}`.
HEADING_ANCHOR = re.compile(r"^#{1,6}[ \t].*\{[^}\n]*#(ex-\d\d-[-_a-z0-9]+)[^}\n]*\}[ \t]*$", re.M)


def exercises(source: str) -> list[str]:
    return EXERCISE_START.findall(source)


def heading_anchors(page: str) -> set[str]:
    return set(HEADING_ANCHOR.findall(page))


def unanchored(repo: Path) -> list[str]:
    """One message per exercise section whose chapter page lacks its heading anchor."""
    problems = []
    for source in sorted((repo / "minidocker").rglob("*.py")):
        for name in exercises(source.read_text()):
            chapter = name[3:5]
            pages = sorted((repo / "docs").glob(f"{chapter}-*.md"))
            where = f"{name} ({source.relative_to(repo)})"
            if len(pages) != 1:
                problems.append(f"{where}: chapter {chapter} needs exactly one page docs/{chapter}-*.md, "
                                f"found {[p.name for p in pages]}")
            elif name not in heading_anchors(pages[0].read_text()):
                problems.append(f"{where}: docs/{pages[0].name} has no heading with {{#{name}}}")
    return problems


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    # The venv's own mkdocs (this interpreter's), so the pinned versions are the ones tested.
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}{proc.stderr}"
    return out


def test_mkdocs_build_strict(site):
    assert (site / "index.html").is_file()


# ---------------------------------------------------------------------------------------------
# Nothing from another host

class Loads(html.parser.HTMLParser):
    """Every URL that a browser fetches to show the page (not the links a reader may follow)."""

    FETCHED = {"script": ["src"], "img": ["src", "srcset"], "source": ["src", "srcset"], "iframe": ["src"],
               "video": ["src", "poster"], "audio": ["src"], "embed": ["src"], "object": ["data"],
               "link": ["href"], "use": ["href", "xlink:href"], "image": ["href", "xlink:href"]}
    NOT_FETCHED = {"canonical", "alternate", "next", "prev", "author", "license", "help", "search"}

    def __init__(self):
        super().__init__()
        self.urls, self.scripts, self.mermaid = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and set((attrs.get("rel") or "").split()) <= self.NOT_FETCHED:
            return
        for name in self.FETCHED.get(tag, []):
            if attrs.get(name):
                self.urls += [u.strip().split(" ")[0] for u in attrs[name].split(",")]
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        if "mermaid" in (attrs.get("class") or "").split():
            self.mermaid = True
        self.urls += css_urls(attrs.get("style") or "")


def css_urls(css: str) -> list[str]:
    """What a style sheet fetches: url(...) and @import "..."."""
    return [a or b for a, b in re.findall(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", css)]


def remote(url: str) -> bool:
    """Fetched from another host: an absolute http(s) URL, or a scheme-relative `//host/...`."""
    return bool(re.match(r"(?i)(https?:)?//", url))


def test_no_page_loads_anything_from_another_host(site):
    found = []
    for page in sorted(site.rglob("*.html")):
        parser = Loads()
        parser.feed(page.read_text())
        found += [f"{page.relative_to(site)}: {url}" for url in parser.urls if remote(url)]
        # The theme fetches mermaid.js from a CDN unless the page already has it.
        if parser.mermaid and not any(src.endswith(MERMAID.name) for src in parser.scripts):
            found.append(f"{page.relative_to(site)}: has a diagram but not the site's own {MERMAID.name}")
    for sheet in sorted(site.rglob("*.css")):
        found += [f"{sheet.relative_to(site)}: {url}" for url in css_urls(sheet.read_text()) if remote(url)]
    assert not found, ("the site must work offline and where CDNs are blocked; these load from another host:\n  "
                       + "\n  ".join(found))


MERMAID = REPO / "docs" / "assets" / "javascripts" / "mermaid-11.12.0.min.js"
MERMAID_SHA256 = "07e37dfa97b337ccc85365d57eddf99b9706f09db3b59b260d0333b23b343c4b"  # npm mermaid@11.12.0


def test_mermaid_is_the_official_build():
    # Vendored, so a fresh clone works offline; mkdocs.yml says where it comes from.
    assert hashlib.sha256(MERMAID.read_bytes()).hexdigest() == MERMAID_SHA256, \
        f"{MERMAID.relative_to(REPO)} is not mermaid 11.12.0's dist/mermaid.min.js"


@given(st.sampled_from(["https://cdn.example/x.js", "//cdn.example/x.js", "HTTP://a/b"]),
       st.sampled_from(["assets/x.js", "../assets/x.js", "/assets/x.js", "#top", "data:image/png;base64,AA"]))
def test_remote_tells_another_host_from_the_site(far, near):
    assert remote(far) and not remote(near)


def test_loads_finds_what_a_browser_fetches():
    parser = Loads()
    parser.feed('<link rel="stylesheet" href="https://fonts.example/css"><link rel="canonical" href="https://x/">'
                '<a href="https://docs.example/">read</a><img src="//img.example/a.png">'
                '<div style="background: url(\'https://b.example/i.png\')"></div><pre class="mermaid">')
    assert parser.urls == ["https://fonts.example/css", "//img.example/a.png", "https://b.example/i.png"]
    assert parser.mermaid


# ---------------------------------------------------------------------------------------------
# Transcripts: the output on the pages is what the commands print

CONSOLE = re.compile(r"^(?P<indent>[ \t]*)```console[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
INCLUDE = re.compile(r'^\s*-+8<-+\s+"docs/transcripts/(?P<name>[-\w]+)\.txt"\s*$')


def console_blocks(page: str) -> list[str]:
    return [m["body"] for m in CONSOLE.finditer(page)]


def test_console_blocks_are_included_from_transcripts():
    typed, used = [], set()
    for page in sorted((REPO / "docs").glob("*.md")):
        for body in console_blocks(page.read_text()):
            lines = [line for line in body.splitlines() if line.strip()]
            if not lines or not all(INCLUDE.match(line) for line in lines):
                typed.append(f"{page.name}: {lines[0] if lines else '(empty)'}")
        used |= {m["name"] for m in map(INCLUDE.match, page.read_text().splitlines()) if m}
    assert not typed, ("console output typed by hand drifts from what the command prints; record it in "
                       "scripts/transcripts.py and include docs/transcripts/NAME.txt:\n  " + "\n  ".join(typed))
    known = set(transcripts.BY_NAME) | {transcripts.GRADE}
    assert used <= known, f"pages include transcripts that no script run makes or checks: {sorted(used - known)}"
    assert known <= used, f"transcripts that no page shows: {sorted(known - used)}"


def test_console_blocks_finds_typed_output():
    page = ('```console\n--8<-- "docs/transcripts/a.txt"\n```\n\n'
            '    ```console\n    $ minidocker ps\n    CONTAINER ID\n    ```\n')
    assert [bool(INCLUDE.match(b.strip())) for b in console_blocks(page)] == [True, False]


@pytest.fixture(scope="module")
def session():
    harness.need_root()  # the transcripts start containers
    s = transcripts.Session()
    yield s
    s.close()


@pytest.mark.parametrize("name", list(transcripts.BY_NAME))
def test_transcript_matches_what_the_command_prints(session, name):
    diff = transcripts.check(transcripts.BY_NAME[name], session)
    assert not diff, (f"docs/transcripts/{name}.txt no longer shows what the command prints: run "
                      f"`sudo make transcripts` and read the change\n" + "\n".join(diff))


def test_lab_grade_transcript_matches_the_suites(session):
    problems = transcripts.check_grade(session)
    assert not problems, (f"docs/transcripts/{transcripts.GRADE}.txt is out of date: run `sudo make transcripts` "
                          "(about a minute)\n" + "\n".join(problems))


def test_lab_grade_elsewhere_compares_the_cgroup_tests_without_their_driver(session, monkeypatch):
    # The lab VM (pure v2) collects chapter 01's cgroup tests as [v2] alone; the transcript, made on
    # a hybrid host, counts [v1] and [v2]. The same tests, not drift (this failed on the lab VM).
    everything = transcripts.collect()
    monkeypatch.setattr(transcripts, "collect",
                        lambda: {ch: [t for t in tests if "[v1" not in t] for ch, tests in everything.items()})
    monkeypatch.setattr(transcripts, "host", lambda: {"cgroups": ["/sys/fs/cgroup"], "paths": [], "tools": []})
    assert not [p for p in transcripts.check_grade(session) if "no longer exists" in p or "is new" in p]


ids = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(ids, ids, st.integers(2, 4_000_000), st.integers(2, 4_000_000),
       st.datetimes().map(lambda t: t.isoformat() + "Z"))
def test_comparable_ignores_ids_pids_and_times(id1, id2, pid1, pid2, when):
    line = '[minidocker {p}] write("/sys/fs/cgroup/pids/minidocker/{i}/pids.max", "20") = 2\n' \
           '  "pid": {p},\n  "created": "{t}",\n{s}'
    plain = transcripts.Transcript("t")
    one = line.format(p=pid1, i=id1, t=when, s=id1[:12])
    other = line.format(p=pid2, i=id2, t="2001-01-01T00:00:00.5Z", s=id2[:12])
    assert transcripts.comparable(plain, one) == transcripts.comparable(plain, other)
    assert transcripts.comparable(plain, one) != transcripts.comparable(plain, one.replace("pids.max", "pids.min"))


@given(st.lists(st.sampled_from(["engine", "container"]), min_size=1, max_size=12), st.randoms())
def test_comparable_takes_two_processes_in_either_interleaving(who, random):
    # Each process's lines in its own order; the scheduler decides how the two mix (CI saw the
    # engine's setns land between the container's cgroup writes).
    tags = {"engine": "[minidocker 7]", "container": "[container pid 1 (host 8)]"}
    calls = [f"{tags[w]} call{i}() = 0" for i, w in enumerate(who)]
    mixed = {w: [c for c in calls if c.startswith(tags[w])] for w in tags}
    shuffled = []
    while mixed["engine"] or mixed["container"]:  # another merge of the two, keeping each one's order
        pick = random.choice([w for w in tags if mixed[w]])
        shuffled.append(mixed[pick].pop(0))
    trace = transcripts.Transcript("t", by_process=True)
    assert transcripts.comparable(trace, "\n".join(calls)) == transcripts.comparable(trace, "\n".join(shuffled))
    swapped = calls[::-1]  # one process's own order changed: a real difference
    if len({c for c in calls if c.startswith(tags[who[0]])}) > 1:
        assert transcripts.comparable(trace, "\n".join(calls)) != transcripts.comparable(trace, "\n".join(swapped))


@given(st.lists(st.lists(st.from_regex(r"[a-z0-9/:.]{1,30}", fullmatch=True), min_size=3, max_size=3),
                min_size=1, max_size=4))
def test_realign_pads_columns_as_runc(rows):
    table = ["  ".join(["ID", "STATUS", "BUNDLE"])] + ["  ".join(r) for r in rows]
    out = transcripts.realign(table)
    starts = {tuple(m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", line)) for line in out}
    assert len(starts) == 1, out  # every column starts at the same place on every line
    plain = transcripts.Transcript("t")
    assert transcripts.comparable(plain, "\n".join(out)) == transcripts.comparable(plain, "\n".join(table))


def test_every_exercise_has_its_heading():
    problems = unanchored(REPO)
    assert not problems, ("the lab tool's hint links would point nowhere:\n  " + "\n  ".join(problems)
                          + "\nadd a heading like `### What to do {#ex-NN-name}` to the chapter's page")


names = st.builds(lambda ch, short: f"ex-{ch:02d}-{short}",
                  st.integers(0, 99), st.from_regex(r"[a-z0-9][-_a-z0-9]{0,15}", fullmatch=True))


@given(st.lists(names, unique=True, max_size=6), st.data())
def test_scanner_finds_sections_and_headings(found, data):
    # A source file as the lab tool expects it, and a page with headings for some of the sections.
    source = "".join(f"def f():\n    # --8<-- [start:{n}]\n    # hint\n    pass\n    # --8<-- [end:{n}]\n"
                     for n in found)
    headed = data.draw(st.sets(st.sampled_from(found)) if found else st.just(set()))
    page = "".join(f"### Do it {{#{n}}}\n\nText with {{#not-a-heading}} and #{n}.\n\n" for n in headed)
    page += "### With a class too { .exercise #ex-99-styled }\n"
    assert exercises(source) == found
    assert heading_anchors(page) == headed | {"ex-99-styled"}


def test_unanchored_reports_a_missing_heading_and_page(tmp_path):
    (tmp_path / "minidocker").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "minidocker" / "m.py").write_text(
        "def f():\n    # --8<-- [start:ex-01-one]\n    # hint\n    pass\n    # --8<-- [end:ex-01-one]\n"
        "    # --8<-- [start:ex-07-seven]\n    # hint\n    pass\n    # --8<-- [end:ex-07-seven]\n")
    (tmp_path / "docs" / "01-isolation.md").write_text("# 01\n\nSee {#ex-01-one} (not a heading).\n")
    problems = unanchored(tmp_path)
    assert len(problems) == 2 and "ex-01-one" in problems[0] and "ex-07-seven" in problems[1]
    (tmp_path / "docs" / "01-isolation.md").write_text("# 01\n\n## Pivot {#ex-01-one}\n")
    (tmp_path / "docs" / "07-later.md").write_text("## Seven {#ex-07-seven}\n")
    assert unanchored(tmp_path) == []
