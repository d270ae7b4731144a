"""`minidocker attach CONTAINER`: a terminal to a running container, as `docker attach`.

Its output is the container's log, followed from now on (the supervisor owns the container's
output, so a later client reads what it logs); its input, when the container was started with -i,
goes to the FIFO its supervisor reads (container/stdin.py). Ends when the container does, with
its exit code. See docs/07-daemon.md#attach.
"""

import os
import signal
import sys
import termios
import threading
import tty as ttymode

from minidocker.errors import MinidockerError


def cmd_attach(args) -> int:
    from minidocker.container import lifecycle, logs, stdin

    c = lifecycle.find(args.container)
    if not c.state["Running"]:
        raise MinidockerError("You cannot attach to a stopped container, start it first", f"minidocker start {c.name}")
    terminal = bool(c.record["Config"].get("Tty"))
    saved_mode, copy_stdin = None, None
    if not args.no_stdin and c.record["Config"].get("OpenStdin"):
        fifo = stdin.open_for_client(c.dir, c.name)
        if terminal and os.isatty(0):
            saved_mode = termios.tcgetattr(0)
            ttymode.setraw(0)  # keys as they are typed, ^C included: the container's terminal decides
        # Started once the log's end is known: an answer logged before would be missed.
        copy_stdin = threading.Thread(target=_copy, args=(0, fifo), daemon=True).start
    if args.sig_proxy and not terminal:  # with a terminal, ^C is a byte for the container's pty
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, lambda signum, _frame: lifecycle.kill(c.id, signum))
    try:
        logs.logs(c.id, sys.stdout.buffer, sys.stderr.buffer, follow=True, tail="0", reading=copy_stdin)
    finally:
        if saved_mode:
            termios.tcsetattr(0, termios.TCSADRAIN, saved_mode)
    try:
        return lifecycle.find(c.id).state["ExitCode"]
    except MinidockerError:
        return 0  # removed as it ended (--rm): Docker's attach has no code to give either


def _copy(source: int, fifo: int) -> None:
    try:
        while data := os.read(source, 65536):
            os.write(fifo, data)
    except OSError:
        pass
    finally:
        os.close(fifo)  # the supervisor sees the hang-up (with StdinOnce, the container's stdin closes)


def add_commands(sub, words=()) -> None:
    p = sub.add_parser("attach", help="attach to a running container's output (and input, with -i)")
    p.add_argument("--no-stdin", action="store_true", help="do not attach STDIN")
    p.add_argument("--sig-proxy", default=True, type=lambda v: v.lower() not in ("false", "0"), metavar="BOOL",
                   help="proxy received signals to the container (default true; not with a TTY)")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_attach)
