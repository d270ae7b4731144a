"""Docker's default seccomp profile, as data: what `--security-opt seccomp=FILE` reads.

The profile is a whitelist. Every call is refused with EPERM (defaultAction SCMP_ACT_ERRNO,
defaultErrnoRet 1) unless a rule allows it. About 350 ordinary calls are always allowed; the
rest are calls that act on the whole machine (load a module, set the clock, mount, reboot, make
namespaces...), allowed only to a container that holds the capability the kernel would ask for
anyway: the filter then stops nothing the capabilities would let through, and a container
started with --cap-add SYS_TIME may set the clock. Two layers, so that a kernel bug reachable
through a rarely used call (there have been many) is out of a default container's reach.

A rule may be conditional on:
- `includes`/`excludes`: the container's capabilities (`caps`), the machine's architecture
  (`arches`, in Go's names: amd64, arm64...) and the kernel (`minKernel`). The engine resolves
  them when it writes the container's config (seccomp.to_spec), as moby does: the OCI config
  holds only the rules that apply;
- `args`: the call's arguments, checked by the filter itself at each call. clone is allowed
  when no CLONE_NEW* flag is set (a new namespace takes CAP_SYS_ADMIN), personality only for
  the few harmless personalities, socket for every family but AF_ALG and AF_VSOCK.

This is written after moby's default_linux.go (github.com/moby/profiles/seccomp v0.2.3: the
same rules, in the same order, in our own words). `default_profile()` gives it in the JSON
format of `--security-opt seccomp=FILE`: json.dumps(default_profile()) is a file Docker reads.
See docs/08-hardening.md#seccomp-profile.
"""

# Go's architecture names (the includes/excludes filters') -> seccomp's, with the 32-bit
# variants a 64-bit machine also runs (archMap: an x86_64 kernel runs i386 and x32 programs).
ARCH_MAP = [
    ("SCMP_ARCH_X86_64", ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", ["SCMP_ARCH_ARM"]),
    ("SCMP_ARCH_MIPS64", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]),
    ("SCMP_ARCH_MIPS64N32", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]),
    ("SCMP_ARCH_MIPSEL64", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]),
    ("SCMP_ARCH_MIPSEL64N32", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]),
    ("SCMP_ARCH_S390X", ["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", []),
    ("SCMP_ARCH_LOONGARCH64", []),
]

# The calls any container may make: files, memory, processes, signals, time (read), sockets,
# IPC, timers, the *32 and *64 variants of 32-bit ABIs. Not io_uring's: its operations do
# I/O without system calls, where no filter sees them (moby removed them in 2024). In moby's order.
ALWAYS_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid
geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32
getxattr getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl
io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit
ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr
link linkat listen listmount listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat
mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease
pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename
renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl
semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid
setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr
setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit
umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4
waitid waitpid write writev
""".split()

# <sched.h>: a clone with any of these makes a namespace, which takes CAP_SYS_ADMIN.
CLONE_NAMESPACE_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
AF_ALG, AF_VSOCK = 38, 40  # the kernel's crypto API (a rich source of kernel bugs); sockets to the hypervisor
ENOSYS, EPERM = 38, 1

# Calls allowed only with a capability: the capability, and the calls the kernel asks it for.
BY_CAPABILITY = [
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),  # the "shocker" escape: any inode by its handle
    ("CAP_SYS_ADMIN", "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie "
                      "lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount "
                      "open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog "
                      "umount umount2 unshare"),
]
BY_CAPABILITY_LATER = [  # after clone's conditional rules, in moby's order
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
]

# Calls of one architecture only.
BY_ARCH = [
    (["ppc64le"], "sync_file_range2 swapcontext"),
    (["arm", "arm64"], "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (["amd64", "x32"], "arch_prctl"),
    (["amd64", "x32", "x86"], "modify_ldt"),
    (["s390", "s390x"], "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (["riscv64"], "riscv_flush_icache"),
]


def allow(names, args=None, includes=None, excludes=None, **more) -> dict:
    rule = {"names": names.split() if isinstance(names, str) else names, "action": "SCMP_ACT_ALLOW",
            "args": args or [], **more}
    if includes:
        rule["includes"] = includes
    if excludes:
        rule["excludes"] = excludes
    return rule


def arg(index: int, value: int, op: str, value_two: int = 0) -> dict:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


# --8<-- [start:default-profile]
def default_profile() -> dict:
    syscalls = [
        allow(ALWAYS_ALLOWED),
        # Kernels before 4.8 let a ptrace'd process skip the filter: ptrace only from 4.8 on.
        allow("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        # socket(2), every address family but AF_ALG (38) and AF_VSOCK (40): three ranges.
        allow("socket", [arg(0, AF_ALG, "SCMP_CMP_LT")]),
        allow("socket", [arg(0, AF_ALG + 1, "SCMP_CMP_EQ")]),
        allow("socket", [arg(0, AF_VSOCK, "SCMP_CMP_GT")]),
        # personality(2): Linux's own (0), PER_LINUX32 (8: what `linux32` asks for), UNAME26 (0x20000:
        # uname says 2.6, for old programs), both, and 0xffffffff, which only reads the current one.
        # Not ADDR_NO_RANDOMIZE (0x40000), which would turn off address randomisation.
        *(allow("personality", [arg(0, value, "SCMP_CMP_EQ")])
          for value in (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)),
        *(allow(names, includes={"arches": arches}) for arches, names in BY_ARCH),
        *(allow(names, includes={"caps": [cap]}) for cap, names in BY_CAPABILITY),
        # Without CAP_SYS_ADMIN, clone may make threads and processes, not namespaces: the flags
        # masked with CLONE_NEW* must be 0. s390 passes the flags second, so its rule looks there.
        allow("clone", [arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0)],
              excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}),
        allow("clone", [arg(1, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0)],
              includes={"arches": ["s390", "s390x"]}, excludes={"caps": ["CAP_SYS_ADMIN"]},
              comment="s390 parameter ordering for clone is different"),
        # clone3 passes its flags in a struct in memory, which a filter cannot read: refuse it as
        # if the kernel did not have it, so that the C library falls back to clone (which it can).
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS, "args": [],
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        *(allow(names, includes={"caps": [cap]}) for cap, names in BY_CAPABILITY_LATER),
    ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "archMap": [{"architecture": arch, "subArchitectures": subs} for arch, subs in ARCH_MAP],
        "syscalls": syscalls,
    }
# --8<-- [end:default-profile]

