"""How the docker CLI prints lists (`ps`, `stats`, `top`): a template per row, then aligned columns.

Every list command of the docker CLI has a default format that is itself a Go template:

    ps     table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}
    stats  table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}

Each row runs the template against a "context" (a dict of the row's fields, already formatted
as text); `table` adds a header row and aligns the tab-separated cells with Go's tabwriter. So
`--format` is not a feature bolted on: the default table is just one format among others.
Also here: Go's and go-units' ways of writing sizes, quotes and cut-off text.
"""

import unicodedata

from minidocker.container import gotemplate


# --8<-- [start:write]
def write(format: str, rows: list[dict], headers: dict[str, str]) -> str:
    """The docker CLI's formatter.Context.Write: `table ...` (with a header), `json`, or a template."""
    if format == "json":
        format = "{{json .}}"
    table = format.startswith("table")
    template = format.removeprefix("table").strip(" ") if table else format
    template = template.replace("\\t", "\t").replace("\\n", "\n")  # as typed in a shell: '\t'
    gotemplate.parse(template)  # a bad template is refused even when there is no row to show
    lines = [gotemplate.render(template, row) for row in rows]
    if not table:
        return "".join(line + "\n" for line in lines)
    # The header is the same template run against the column names, with the text functions
    # (json, upper, ...) passing a name through unchanged, as the CLI's HeaderFunctions do.
    header = gotemplate.render(template, headers, header=True)
    return tabwriter([header, *lines], minwidth=10)
# --8<-- [end:write]


def tabwriter(lines: list[str], minwidth: int, padding: int = 3) -> str:
    """Go's text/tabwriter as the docker CLI sets it up (padding 3, padded with spaces).

    A cell ends at a tab; a column is as wide as its widest cell plus the padding, and at least
    `minwidth`. The last cell of a line has no tab after it, so it is written as it is. (Go
    aligns each run of lines that have a column separately; our tables have the same cells on
    every line, where that is the same thing.)
    """
    rows = [line.split("\t") for line in "\n".join(lines).split("\n")]
    widths: list[int] = []
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            if i == len(widths):
                widths.append(minwidth)
            widths[i] = max(widths[i], display_width(cell) + padding)
    out = []
    for cells in rows:
        padded = [cell + " " * (widths[i] - display_width(cell)) for i, cell in enumerate(cells[:-1])]
        out.append("".join(padded) + cells[-1])
    return "".join(line + "\n" for line in out)


def display_width(text: str) -> int:
    """Columns on a terminal: East Asian wide characters (中文) take two, as go-runewidth counts."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ellipsis(text: str, width: int) -> str:
    """The docker CLI's Ellipsis: cut to `width` columns, the last one an ellipsis (…)."""
    if display_width(text) <= width:
        return text
    kept, used = "", 0
    for char in text:
        used += display_width(char)
        if used > width - 1:
            break
        kept += char
    return kept + "…"


def go_quote(text: str) -> str:
    """Go's strconv.Quote, which the docker CLI puts around a command in `ps`: "sh -c \\"x\\""."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(char)])
        elif "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8 (surrogate-escaped)
            out.append(f"\\x{ord(char) - 0xdc00:02x}")
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def _scaled(size: float, base: int, units: tuple[str, ...]) -> tuple[float, str]:
    i, size = 0, float(size)  # Go divides a float64, and so rounds as we do
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits: 5.629MiB, 1.952GiB, 0B."""
    value, unit = _scaled(size, 1024, BINARY)
    return f"{value:.4g}{unit}"  # Go's %.4g is C's, as Python's is


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units (kB = 1000 B), as NET I/O and BLOCK I/O."""
    value, unit = _scaled(size, 1000, DECIMAL)
    return f"{value:.{precision}g}{unit}"
