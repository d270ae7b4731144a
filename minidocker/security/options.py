"""`--security-opt`: HostConfig.SecurityOpt, read with dockerd's rules and words.

Each option is KEY=VALUE (KEY:VALUE, the form before Docker 17.04, is still read, with a
warning), or the bare word no-new-privileges:

    seccomp=unconfined        no filter at all
    seccomp=builtin           the default profile (the same as not asking)
    seccomp=<JSON>            a profile: the docker CLI reads `seccomp=FILE` and sends the file's
                              JSON text, and so does ours (cli/create_flags.py)
    no-new-privileges[=true|false]
    apparmor=..., label=...   accepted and ignored, with a warning: minidocker has no LSM
                              support (AppArmor, SELinux); refusing them would break scripts
                              written for Docker, where they are common.

A bad option is refused at create, with dockerd's words: `invalid --security-opt 2: "x=y"`.
See docs/08-hardening.md#security-opt.
"""

import collections
import json
import sys

from minidocker.errors import MinidockerError

UNCONFINED = "unconfined"
HINT = "use seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false]"


# seccomp: a profile, UNCONFINED, or None for Docker's default; no_new_privileges: a bool;
# ignored: apparmor=..., label=..., read and not enforced. (collections' namedtuple, not typing's
# NamedTuple: importing typing costs each container start ~2 ms.)
SecurityOptions = collections.namedtuple("SecurityOptions", "seccomp no_new_privileges ignored")


def parse_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool, which dockerd uses: 1 t T TRUE true True, 0 f F FALSE false False."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def split(option: str) -> tuple[str, str] | None:
    if "=" in option:
        key, value = option.split("=", 1)
    elif ":" in option:
        key, value = option.split(":", 1)
        print(f"WARNING: security options with ':' as a separator are deprecated, use '=' instead: {option}",
              file=sys.stderr)
    else:
        return None
    return key, value


def parse(security_opt: list[str]) -> SecurityOptions:
    seccomp, no_new_privileges, ignored = None, False, []
    for option in security_opt:
        if option == "no-new-privileges":
            no_new_privileges = True
            continue
        parts = split(option)
        if parts is None:
            raise MinidockerError(f"invalid --security-opt 1: {json.dumps(option)}", HINT)
        key, value = parts
        if key == "seccomp":
            seccomp = load_profile(value)
        elif key == "no-new-privileges" and parse_bool(value) is not None:
            no_new_privileges = parse_bool(value)
        elif key in ("apparmor", "label"):
            ignored.append(option)
            print(f"WARNING: --security-opt {option} ignored: minidocker has no AppArmor or SELinux support",
                  file=sys.stderr)
        else:
            raise MinidockerError(f"invalid --security-opt 2: {json.dumps(option)}", HINT)
    return SecurityOptions(seccomp, no_new_privileges, ignored)


def load_profile(value: str) -> "dict | str | None":
    """seccomp=VALUE -> UNCONFINED, None (the builtin default) or the profile as a dict."""
    if value == UNCONFINED:
        return UNCONFINED
    if value in ("", "builtin"):
        return None
    try:
        profile = json.loads(value)
    except ValueError as e:
        raise MinidockerError(f"Decoding seccomp profile failed: {e}",
                              "seccomp=FILE takes a JSON profile, e.g. Docker's default.json") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls", []), list):
        raise MinidockerError("Decoding seccomp profile failed: not a profile",
                              'a JSON object: {"defaultAction": ..., "syscalls": [...]}')
    return profile


def from_cli(security_opt: list[str]) -> list[str]:
    """The docker CLI's side, before it sends the request: every option but no-new-privileges
    needs a value, and seccomp=FILE is replaced by seccomp=<the file's JSON, compacted>. (The
    engine never reads the client's files: with a daemon, they may be on another machine.)"""
    sent = []
    for option in security_opt:
        key, sep, value = option.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = option.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise MinidockerError(f"Invalid --security-opt: {json.dumps(option)}", HINT)
        if key == "seccomp" and value not in (UNCONFINED, "builtin"):
            try:
                with open(value, "rb") as profile:
                    text = profile.read()
            except OSError as e:
                raise MinidockerError(f"opening seccomp profile ({value}) failed: {e.strerror}",
                                      "seccomp=FILE names a JSON profile on this machine") from None
            try:
                option = "seccomp=" + json.dumps(json.loads(text), separators=(",", ":"))
            except ValueError as e:
                raise MinidockerError(f"compacting json for seccomp profile ({value}) failed: {e}",
                                      "the file must hold JSON, as Docker's default.json does") from None
        sent.append(option)
    return sent
