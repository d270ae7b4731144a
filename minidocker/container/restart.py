"""Restart policies: `--restart no|on-failure[:N]|always|unless-stopped`, HostConfig.RestartPolicy.

A policy is data the engine keeps with the container: {"Name": "on-failure", "MaximumRetryCount": 3}.
Acting on it is the daemon's job (minidocker/daemon/monitor.py), as in Docker, where dockerd hears
each exit from containerd and asks its restart manager what to do. Without a daemon nobody is
there when a container exits, so nothing restarts it: the policy waits in container.json until a
daemon starts, and the daemon then starts what `always` (and the rest, see below) asks for.

Two facts outlive any one process, so they are kept in container.json beside the policy (Docker
keeps them in its config.v2.json, not in the state): `RestartCount` (shown by inspect) and
`HasBeenManuallyStopped`. The supervisor rewrites state.json when its container exits, from the
copy it read at start, so a field written there by `stop` meanwhile would be lost.
"""

import os

from minidocker import store
from minidocker.errors import MinidockerError

POLICIES = ("no", "always", "on-failure", "unless-stopped")
NONE = {"Name": "no", "MaximumRetryCount": 0}  # what the docker CLI sends without --restart

# dockerd's restart manager waits before each restart, 100 ms and then twice as long each time,
# at most a minute; a container that ran 10 s or more counts as healthy and starts again at 100 ms.
FIRST_DELAY, MAX_DELAY, HEALTHY_RUN = 0.1, 60.0, 10.0


def parse_flag(text: str) -> dict:
    """`--restart on-failure:3` -> {"Name": "on-failure", "MaximumRetryCount": 3}, as the docker
    CLI parses it: only the syntax. Whether the name is a policy is the engine's question."""
    name, colon, count = text.partition(":")
    if colon and not name:
        raise MinidockerError("invalid restart policy format: no policy provided before colon",
                              "use --restart on-failure:3")
    if count:
        try:
            number = int(count)
        except ValueError:
            raise MinidockerError("invalid restart policy format: maximum retry count must be an integer",
                                  "use --restart on-failure:3") from None
    return {"Name": name, "MaximumRetryCount": number if count else 0}


def validate(host_config: dict) -> None:
    """dockerd's checks on HostConfig.RestartPolicy, in its words (a client may send any JSON)."""
    policy = host_config.get("RestartPolicy") or {}
    name, count = policy.get("Name") or "", policy.get("MaximumRetryCount") or 0
    if not isinstance(count, int):
        raise MinidockerError(f"invalid restart policy: maximum retry count {count!r} is not an integer",
                              "use --restart on-failure:3")
    if name in ("", "no", "always", "unless-stopped") and count:
        negative = " and cannot be negative" if count < 0 else ""
        raise MinidockerError(f"invalid restart policy: maximum retry count can only be used with 'on-failure'{negative}",
                              "use --restart on-failure:N")
    if name == "on-failure" and count < 0:
        raise MinidockerError("invalid restart policy: maximum retry count cannot be negative",
                              "use --restart on-failure:N with N >= 0")
    if name not in ("", *POLICIES):
        raise MinidockerError(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                              "'on-failure', or 'unless-stopped'", "see `minidocker run --help`")
    if host_config.get("AutoRemove") and name not in ("", "no"):
        raise MinidockerError("can't create 'AutoRemove' container with restart policy", "drop --rm or --restart")


def should_restart(policy: dict, exit_code: int, restart_count: int, manually_stopped: bool,
                   daemon_starting: bool = False) -> bool:
    """Whether a container that has exited is started again, as dockerd's restart manager decides:
    `always` restarts whatever the exit code, except after a `stop` (but a daemon that starts
    starts it again, even then); `unless-stopped` restarts unless it was stopped; `on-failure[:N]`
    restarts on a non-zero exit code, at most N times when N is given; `no` never."""
    # --8<-- [start:ex-07-restart-policy]
    # The policy's Name ("" means "no"); `always` first (a daemon's start overrides a stop), then
    # a user's stop ends every other policy; on-failure counts against MaximumRetryCount (0: no limit).
    name = policy.get("Name") or "no"
    if name == "always":
        return daemon_starting or not manually_stopped
    if manually_stopped:
        return False
    if name == "unless-stopped":
        return True
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False
    # --8<-- [end:ex-07-restart-policy]


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart: dockerd's back-off, so that a container that exits at
    once does not spin a CPU (100 ms, 200 ms, 400 ms... up to a minute)."""
    if ran_for >= HEALTHY_RUN or not previous:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def _save_record(c) -> None:
    store.write_json(os.path.join(c.dir, "container.json"), c.record)


def stopped_by_user(c) -> None:
    """`stop` and `kill`: remembered before the signal is sent, so that whoever sees the exit
    (the daemon's monitor) knows it was asked for."""
    if (c.record.get("HostConfig", {}).get("RestartPolicy") or NONE).get("Name", "no") in ("", "no"):
        return  # nobody will ask: spare the write
    c.record["HasBeenManuallyStopped"] = True
    _save_record(c)


def started_by_user(c) -> None:
    """`start` (and `run`): a user's start forgets the stop and the count, as dockerd resets its
    restart manager then. Written only when something changes: `run` must stay fast."""
    if c.record.get("HasBeenManuallyStopped") or c.record.get("RestartCount"):
        c.record.update(HasBeenManuallyStopped=False, RestartCount=0)
        _save_record(c)


def count_restart(c) -> None:
    """The daemon's own restart: one more in RestartCount (what inspect shows)."""
    c.record["RestartCount"] = (c.record.get("RestartCount") or 0) + 1
    _save_record(c)
