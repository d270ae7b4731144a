"""minidocker: a small, heavily commented Docker, built chapter by chapter on the real kernel."""

__version__ = "0.1.0"
API_VERSION = "1.43"  # the Docker Engine API version whose shapes `inspect` follows
