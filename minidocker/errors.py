"""The one error type a user sees, and Docker's exit codes.

A user error is printed as one line, `minidocker: <what> (<hint>)`, never as a traceback; the CLI
turns it into exit code 125, the code Docker uses when the engine itself failed.
"""

# Docker's exit codes (the same as `docker run`'s, see docs/01-isolation.md#exit-codes).
EXIT_ENGINE = 125  # the engine failed: bad flag, missing image, invalid name, ...
EXIT_CANNOT_INVOKE = 126  # the command exists but cannot be run (not executable)
EXIT_NOT_FOUND = 127  # the command does not exist in the container
EXIT_SIGNAL_BASE = 128  # killed by signal N -> 128 + N


class MinidockerError(Exception):
    """An error the user can act on. `hint` says how."""

    def __init__(self, what: str, hint: str = "", exit_code: int = EXIT_ENGINE):
        super().__init__(what)
        self.what, self.hint, self.exit_code = what, hint, exit_code

    def __str__(self) -> str:
        return f"{self.what} ({self.hint})" if self.hint else self.what
