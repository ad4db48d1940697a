"""systemd's notify protocol: READY, STATUS, WATCHDOG, RELOADING, STOPPING over a datagram.

A few lines over ``$NOTIFY_SOCKET`` instead of a dependency. Without the variable (not
under systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket

import structlog


class Notifier:
    """Sends state changes to the service manager."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written "@name" and addressed with a leading NUL.
        self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_s: float | None = (
            int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None
        )
        pid = env.get("WATCHDOG_PID", "")
        if pid.isdigit() and int(pid) != os.getpid():
            self.watchdog_s = None  # the watchdog is someone else's
        self._log = structlog.get_logger("hashspark.notify")

    @property
    def enabled(self) -> bool:
        """True under a service manager that listens."""
        return bool(self._address)

    def send(self, *fields: str) -> None:
        """Send ``KEY=value`` lines; failures are logged, never raised (they must not stop us)."""
        if not self._address:
            return
        try:
            # Non-blocking: a manager that does not drain its socket must never stall the loop.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            self._log.warning("notify_failed", error=str(exc))

    def ready(self, status: str) -> None:
        """Start-up is complete."""
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """A one-line status for ``systemctl status``."""
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        """We are alive and making progress."""
        self.send("WATCHDOG=1")

    def reloading(self) -> None:
        """A reload begins (READY=1 ends it)."""
        self.send("RELOADING=1")

    def stopping(self) -> None:
        """Shutdown begins."""
        self.send("STOPPING=1")
