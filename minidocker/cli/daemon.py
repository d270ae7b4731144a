"""`minidocker daemon`: serve the Docker Engine API in the foreground, as dockerd does."""

import os
import signal


def cmd_daemon(args) -> int:
    from minidocker import store
    from minidocker.daemon import server

    store.require_root()
    if args.userns_remap:  # chapter 08: every container's root is this user's range on the host
        from minidocker.security import userns

        os.environ[userns.ENV] = args.userns_remap  # read by the engine, and by what we start
        userns.remap()  # the user (made, for "default") and its ranges, or dockerd's error now
    hosts = args.host or [f"unix://{server.DEFAULT_SOCKET}"]
    # SIGTERM (systemctl stop) ends the daemon as Ctrl-C does; the containers keep running.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    from minidocker.daemon import monitor

    monitor.start()  # live restore: find the containers, restart what policies ask, then watch them
    try:
        server.serve(hosts, debug=args.debug or bool(os.environ.get("MINIDOCKER_DEBUG")))
    except KeyboardInterrupt:
        pass
    return 0


def add_commands(sub, words=()) -> None:
    p = sub.add_parser("daemon", help="serve the Docker Engine API (the docker CLI can then drive minidocker)")
    p.add_argument("-H", "--host", action="append", metavar="HOST",
                   help="where to listen: unix:///run/minidocker.sock (default) or tcp://127.0.0.1:PORT; repeatable")
    p.add_argument("-D", "--debug", action="store_true", help="log every request to stderr")
    p.add_argument("--userns-remap", default="", metavar="default|USER[:GROUP]",
                   help="run containers in a user namespace: root inside is USER's range of /etc/subuid outside")
    p.set_defaults(func=cmd_daemon)
