"""The daemon: minidocker's engine behind the Docker Engine API (chapter 07).

Docker is two programs: dockerd, which owns images, containers, networks and volumes, and the
docker CLI, which only sends it HTTP requests over /run/docker.sock. `minidocker daemon` is the
first one. Its parts:

    server.py   the listener: HTTP/1.1 on a unix socket, one thread per connection, the hijack
    http.py     Request, Response, StreamResponse, Hijack; errors as {"message": ...}
    router.py   the route table: "POST /v1.43/containers/{id}/start" -> a handler
    system.py   /_ping and /version (the handshake), /info, /events, /system/df
    containers.py  the container endpoints, each a thin call into container/*.py
    streams.py  Docker's 8-byte stream framing (stdout and stderr on one connection)
    images.py, networks.py, volumes.py  the other objects' endpoints

The daemon is not a second engine: every handler calls the same functions the daemonless CLI
calls, and they keep their state on disk, under locks. A container is watched by its own
supervisor process (as containerd-shim watches dockerd's), not by the daemon, so the daemon can
stop or crash and start again while containers keep running.
"""
