"""Docker's pull and push progress: one line per layer, updated as its state changes.

    latest: Pulling from library/busybox
    9ad63333ebc9: Downloading [=======>                              ]  1.21MB/3.39MB
    1b7ca9ccf3fa: Waiting

On a terminal the lines are redrawn in place: to update the line of layer k of n, the cursor
goes up n-k lines (ESC [ n A), the line is cleared (ESC [ 2K) and rewritten, and the cursor goes
back down (ESC [ n B). When the output is a file or a pipe there is nothing to redraw, and Docker
prints each state change once and leaves out the messages that carry a progress bar (a log
would otherwise fill with "Downloading" lines); so do we.
"""

import sys
import threading
import time


def human_size(n: float) -> str:
    """Docker's units.HumanSize: decimal units, 4 significant digits ("3.39MB", "527B")."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}"
        n /= 1000
    raise AssertionError("unreachable")


def bar(current: int, total: int, width: int = 50) -> str:
    """`[=====>     ]  1.2MB/3.4MB`, as Docker's JSONProgress draws it."""
    if total <= 0:
        return f"{human_size(current):>8}"
    done = min(width, int(current * width / total))
    return f"[{'=' * done}>{' ' * (width - done)}] {human_size(current):>8}/{human_size(total)}"


class Progress:
    """Lines keyed by layer id; thread-safe (a pull downloads several layers at once)."""

    def __init__(self, out=None, quiet: bool = False, tty: bool | None = None):
        self.out = out or sys.stdout
        self.quiet = quiet
        self.tty = self.out.isatty() if tty is None else tty
        self.ids: list[str] = []  # the order of the lines on the screen
        self.shown: dict[str, str] = {}  # id -> the status last printed (plain mode: no repeats)
        self.drawn: dict[str, float] = {}  # id -> when its bar was last redrawn (terminal)
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        """A message that belongs to no layer: `Digest: …`, `Status: …`."""
        if not self.quiet:
            with self.lock:
                self.out.write(text + "\n")
                self.out.flush()

    def update(self, id: str, status: str, current: int | None = None, total: int | None = None) -> None:
        if self.quiet:
            return
        with self.lock:
            if self.tty:
                self._redraw(id, status, current, total)
            elif current is None and self.shown.get(id) != status:
                self.out.write(f"{id}: {status}\n")
            self.shown[id] = status
            self.out.flush()

    def _redraw(self, id, status, current, total) -> None:
        text = f"{id}: {status}" + (f" {bar(current, total or 0)}" if current is not None else "")
        now = time.monotonic()
        if current is not None and self.shown.get(id) == status and now - self.drawn.get(id, 0) < 0.1:
            return  # ten redraws a second are plenty; a fast download would spend its time drawing
        self.drawn[id] = now
        if id not in self.ids:
            self.ids.append(id)
            self.out.write(f"\x1b[2K\r{text}\n")
            return
        up = len(self.ids) - self.ids.index(id)
        self.out.write(f"\x1b[{up}A\x1b[2K\r{text}\r\x1b[{up}B")


class JSONProgress(Progress):
    """The same updates as Docker's JSON messages, for the daemon (chapter 07): dockerd does not
    draw bars, it streams `{"status", "progressDetail", "id"}` objects and the client (the docker
    CLI, docker-py) draws them. `emit` gets each message as a dict. See docs/07-daemon.md#pull-progress."""

    def __init__(self, emit):
        super().__init__(out=sys.stderr, tty=False)
        self.emit = emit

    def line(self, text: str) -> None:
        self.emit({"status": text})

    def update(self, id: str, status: str, current: int | None = None, total: int | None = None) -> None:
        self.emit(message(id, status, current, total))


def message(id: str, status: str, current: int | None = None, total: int | None = None) -> dict:
    """One of Docker's JSON progress messages (moby's jsonmessage.JSONMessage)."""
    # --8<-- [start:ex-07-progress]
    # Without a byte count, the detail is empty: {"status": "Pull complete", "progressDetail": {}, "id": …}.
    # With one, the client draws the bar from progressDetail; "progress" is the bar already drawn,
    # for old clients that print it as it is.
    if current is None:
        return {"status": status, "progressDetail": {}, "id": id}
    detail = {"current": current, "total": total} if total else {"current": current}
    return {"status": status, "progressDetail": detail, "progress": bar(current, total or 0), "id": id}
    # --8<-- [end:ex-07-progress]
