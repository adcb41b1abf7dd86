"""The gateway's port for `make demo` and `launchers up`: GATEWAY_PORT as `make run` reads it, a flag still wins.

One default for all three ways to start a gateway, so `GATEWAY_PORT=8080 make demo` does what it says; and one
sentence for a busy port that says how to pick another instead of only that it is taken.
"""

from __future__ import annotations

import os
import socket

DEFAULT_GATEWAY_PORT = 8000


def gateway_port_from_env() -> int:
    """GATEWAY_PORT when set (the gateway's own setting), else 8000. Raises ValueError naming the setting."""
    raw = os.environ.get("GATEWAY_PORT", "").strip()
    if not raw:
        return DEFAULT_GATEWAY_PORT
    if not raw.isdigit() or not 0 < int(raw) <= 65535:
        raise ValueError(f"GATEWAY_PORT={raw!r} is not a port number (1-65535)")
    return int(raw)


def in_use(port: int) -> bool:
    """Whether something on this machine already accepts connections on the loopback `port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pick_another(port: int, command: str, flag: str) -> str:
    """How to run `command` on another gateway port than the busy `port`."""
    other = port + 1 if port < 65535 else port - 1
    return f"pick another gateway port: GATEWAY_PORT={other} {command} (or {flag} {other})"
