/* minidocker-exec: the last program the runtime runs before the container's own (CVE-2019-5736).
 *
 * Every process that enters a container is a fork of our Python until its exec. If that exec were
 * Python's own, a container command that is a script starting `#!/proc/self/exe` would make the
 * kernel run *the host's Python* inside the container, where root can write it through
 * /proc/PID/exe (minidocker/exeseal.py tells the story). So the runtime's last exec is this
 * program, from a sealed view that nobody can write, and *it* execs the command: whatever the
 * container finds at /proc/self/exe is then this stub, sealed.
 *
 * Built by scripts/setup.sh: gcc -static (no C library needed in the container) into
 * .venv/libexec/minidocker-exec. It does one exec and nothing else, so it stays this small.
 *
 * Usage: minidocker-exec ERROR_FD PATH ARGV0 [ARG...]
 *   ERROR_FD   the runtime's error pipe (or exec.fifo), still open: on failure the error goes
 *              there as the JSON the runtime reads: {"code": 126, "message": "exec: \"ARGV0\": ..."};
 *   PATH       the program, found in the container's PATH by the runtime;
 *   ARGV0...   the command's argv, as the spec's process.args has it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --8<-- [start:main] */
/* A string inside JSON's quotes: " and \ escaped, control characters as \u00XX. */
static void write_json_string(int fd, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            dprintf(fd, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            dprintf(fd, "\\u%04x", *s);
        else
            dprintf(fd, "%c", *s);
    }
}

int main(int argc, char *argv[], char *envp[]) {
    if (argc < 4) {
        /* Not started by the runtime: by hand, or by a container's `#!/proc/self/exe` script. */
        fprintf(stderr, "minidocker-exec: usage: minidocker-exec ERROR_FD PATH ARGV0 [ARG...]\n");
        return 125;
    }
    int error_fd = atoi(argv[1]);
    /* Close-on-exec from now on: when the command's exec works, the kernel closes the pipe and
     * the runtime reads EOF, its sign that the command runs. */
    fcntl(error_fd, F_SETFD, FD_CLOEXEC);
    execve(argv[2], &argv[3], envp);  /* returns only if it failed */
    int failure = errno;
    int code = failure == ENOENT ? 127 : 126;  /* Docker's: not found, or found but not runnable */
    dprintf(error_fd, "{\"code\": %d, \"message\": \"exec: \\\"", code);
    write_json_string(error_fd, argv[3]);
    dprintf(error_fd, "\\\": %s\"}", strerror(failure));
    return code;
}
/* --8<-- [end:main] */
