"""The seccomp pieces at API level: --security-opt parsing (the docker CLI's and dockerd's),
the profile's resolution for a container (moby's rules), the BPF assembler's limits, and the
compiler's refusals. The filter's behaviour is chapters/08/test_seccomp.py's."""

import importlib
import json

import pytest
from hypothesis import given, strategies as st

from minidocker.errors import MinidockerError
from minidocker.security import bpf, options, seccomp, seccomp_profile
from minidocker.security.syscalls import SYSCALLS

machine = importlib.import_module("chapters.08.seccomp_machine")
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
                "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
                "CAP_AUDIT_WRITE"]


# --- --security-opt -------------------------------------------------------------------------

@pytest.mark.parametrize("opts, seccomp_value, nnp", [
    ([], None, False),
    (["seccomp=unconfined"], options.UNCONFINED, False),
    (["seccomp:unconfined"], options.UNCONFINED, False),  # the old form, with a warning
    (["seccomp=builtin", "no-new-privileges"], None, True),
    (["no-new-privileges=true"], None, True),
    (["no-new-privileges=1", "no-new-privileges=false"], None, False),  # the last one wins
    (['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], {"defaultAction": "SCMP_ACT_ALLOW"}, False),
    (["apparmor=unconfined", "label=disable"], None, False),  # accepted, ignored with a warning
])
def test_security_opts_are_read_as_dockerd_reads_them(opts, seccomp_value, nnp):
    parsed = options.parse(opts)
    assert (parsed.seccomp, parsed.no_new_privileges) == (seccomp_value, nnp)


@pytest.mark.parametrize("opt, words", [
    ("foo", 'invalid --security-opt 1: "foo"'),
    ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
    ("no-new-privileges=yes", 'invalid --security-opt 2: "no-new-privileges=yes"'),
    ("seccomp={", "Decoding seccomp profile failed"),
    ("seccomp=[1]", "Decoding seccomp profile failed"),
])
def test_bad_security_opts_get_dockerds_words(opt, words):
    with pytest.raises(MinidockerError, match=words.replace("[", r"\[")):
        options.parse([opt])


@given(st.lists(st.text(max_size=30)))
def test_parse_fails_only_with_a_user_error(opts):
    try:
        options.parse(opts)
    except MinidockerError:
        pass


def test_the_cli_sends_a_profile_files_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    assert options.from_cli([f"seccomp={path}", "no-new-privileges", "seccomp=unconfined"]) == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "no-new-privileges", "seccomp=unconfined"]
    for bad, words in [("seccomp", "Invalid --security-opt"), ("apparmor=", "Invalid --security-opt"),
                       (f"seccomp={tmp_path}/none.json", "opening seccomp profile"),
                       (f"seccomp={tmp_path}", "opening seccomp profile")]:
        with pytest.raises(MinidockerError, match=words):
            options.from_cli([bad])


# --- the profile, resolved for a container ------------------------------------------------------

def names_of(linux_seccomp: dict, action="SCMP_ACT_ALLOW", with_args=False) -> set[str]:
    return {n for rule in linux_seccomp["syscalls"] if rule["action"] == action and bool(rule.get("args")) == with_args
            for n in rule["names"]}


def test_the_default_profile_is_dockers_json():
    profile = json.loads(json.dumps(seccomp_profile.default_profile()))
    assert (profile["defaultAction"], profile["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]} in profile["archMap"]
    assert len(seccomp_profile.ALWAYS_ALLOWED) == len(set(seccomp_profile.ALWAYS_ALLOWED)) > 300


def test_resolution_follows_capabilities_arch_and_kernel():
    profile = seccomp_profile.default_profile()
    plain = seccomp.resolve(profile, DEFAULT_CAPS, kernel=(6, 1))
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert plain["defaultErrnoRet"] == 1
    allowed = names_of(plain)
    assert {"read", "chroot", "arch_prctl", "ptrace"} <= allowed  # chroot: CAP_SYS_CHROOT is in Docker's 14
    assert not {"mount", "unshare", "reboot", "open_by_handle_at", "cacheflush"} & allowed
    assert names_of(plain, with_args=True) == {"socket", "personality", "clone"}
    assert names_of(plain, "SCMP_ACT_ERRNO") == {"clone3"}
    admin = seccomp.resolve(profile, DEFAULT_CAPS + ["CAP_SYS_ADMIN"], kernel=(6, 1))
    assert {"mount", "unshare", "clone", "clone3"} <= names_of(admin)
    assert "clone" not in names_of(admin, with_args=True) and not names_of(admin, "SCMP_ACT_ERRNO")
    old_kernel = seccomp.resolve(profile, DEFAULT_CAPS, kernel=(4, 4))
    assert "ptrace" not in names_of(old_kernel)
    everything = seccomp.resolve(profile, None, kernel=(6, 1))  # no process.capabilities: all kept
    assert {"mount", "reboot", "init_module", "open_by_handle_at"} <= names_of(everything)


def test_to_spec_writes_linux_seccomp_and_no_new_privileges():
    def spec_for(host_config):
        spec = {"process": {"capabilities": {"bounding": list(DEFAULT_CAPS)}}, "linux": {}}
        seccomp.to_spec(spec, host_config)
        return spec
    assert spec_for({})["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "noNewPrivileges" not in spec_for({})["process"]
    assert "seccomp" not in spec_for({"SecurityOpt": ["seccomp=unconfined"]})["linux"]
    assert "seccomp" not in spec_for({"Privileged": True, "SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_LOG"}']})["linux"]
    assert spec_for({"SecurityOpt": ["no-new-privileges"]})["process"]["noNewPrivileges"] is True
    with pytest.raises(MinidockerError, match="invalid seccomp profile"):
        spec_for({"SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_LOG"}]}']})
    with pytest.raises(MinidockerError, match="both"):
        spec_for({"SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],'
                                  '"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}']})


# --- the compiler and the assembler -------------------------------------------------------------

@pytest.mark.parametrize("rule, words", [
    ({"names": ["read"], "action": "SCMP_ACT_NOTIFY"}, "action"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}, "index"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_LIKE"}]}, "operator"),
])
def test_the_compiler_refuses_what_it_cannot_do(rule, words):
    with pytest.raises(MinidockerError, match=words):
        seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})


def test_without_x32_in_the_profile_an_x32_call_is_killed():
    # Else "allow all but mkdir" would let x32's mkdir (its own number, with the X32 bit) through.
    program = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    x86_64 = machine.AUDIT["x86_64"]
    assert machine.run(program, machine.seccomp_data(SYSCALLS["x32"]["mkdir"], x86_64)) == machine.KILL_PROCESS
    assert machine.run(program, machine.seccomp_data(SYSCALLS["x86_64"]["mkdir"], x86_64)) == machine.ERRNO | 1


def test_the_assembler_refuses_what_the_kernel_would():
    end = bpf.Label("end")
    with pytest.raises(ValueError, match="forward"):
        bpf.assemble([end, bpf.jump(bpf.BPF_JEQ, 1, true=end), bpf.ret(0)])
    with pytest.raises(ValueError, match="forward"):
        bpf.assemble([bpf.jump(bpf.BPF_JEQ, 1, true=end), *[bpf.ret(0)] * 256, end, bpf.ret(0)])
    assert len(bpf.assemble([bpf.goto(end), *[bpf.ret(0)] * 300, end, bpf.ret(1)])) == 302  # ja goes farther
    with pytest.raises(ValueError, match="4096"):
        bpf.assemble([bpf.ret(0)] * 4097)
    assert bpf.pack([bpf.ret(0x7FFF0000)]) == bytes([6, 0, 0, 0, 0, 0, 0xFF, 0x7F])


def test_the_disassembler_names_calls_and_actions():
    linux_seccomp = seccomp.resolve(seccomp_profile.default_profile(), DEFAULT_CAPS, kernel=(6, 1))
    text = seccomp.disassemble(seccomp.compile_filter(linux_seccomp))
    assert "A = arch" in text and "# SCMP_ARCH_X86_64" in text and "return KILL_PROCESS" in text
    assert "# personality" in text and "A = args[0] >> 32" in text and "return ERRNO(38)" in text
    returns = [line.rstrip() for line in text.splitlines() if "return " in line]
    # A section ends with the default, EPERM, and ENOSYS for a call newer than the profile (runc's).
    assert returns[-2].endswith("return ERRNO(1)") and returns[-1].endswith("return ERRNO(38)"), returns[-2:]
