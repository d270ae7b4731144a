"""The docs site builds strictly, and every exercise's hint link lands on a heading.

`mkdocs build --strict` already fails on a missing snippet file or section (pymdownx.snippets
`check_paths`) and on a link to a missing page or anchor (mkdocs.yml `validation`). What the build
cannot see is the link that the lab tool writes into each blanked exercise,
`docs/NN-topic.md#ex-NN-name`: it lives in a student's code, not in the docs. So this file checks
that every `ex-NN-*` section of minidocker/*.py has its `{#ex-NN-name}` heading on chapter NN's page.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given, strategies as st

import harness

REPO = Path(harness.REPO)

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


def test_mkdocs_build_strict(tmp_path):
    # The venv's own mkdocs (this interpreter's), so the pinned versions are the ones tested.
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}{proc.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()


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
