"""`python -m gateway`: serve the gateway with the settings from GATEWAY_* environment variables."""

from __future__ import annotations

import errno
import logging
import logging.config
import socket
import sys

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from gateway.app import create_app
from gateway.http.server import server_config
from gateway.models.registry import ConfigError
from gateway.observability.log_format import logging_config
from gateway.routes.dependencies import GatewayState
from gateway.settings import Settings


def main() -> int:
    try:
        settings = Settings()
        app = create_app(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "GATEWAY_" + "_".join(str(part) for part in first["loc"]).upper()
        print(f"gateway: bad setting {field}: {first['msg']}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"gateway: bad setting: {exc.__cause__ or exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"gateway: bad configuration: {exc}", file=sys.stderr)
        return 2
    busy = _port_taken(settings.host, settings.port)
    if busy:
        other = settings.port + 1 if settings.port < 65535 else settings.port - 1
        print(
            f"gateway: cannot listen on {settings.host}:{settings.port}: {busy}; pick another port with "
            f"GATEWAY_PORT (e.g. GATEWAY_PORT={other} make run)",
            file=sys.stderr,
        )
        return 2
    # JSON lines (or text) for the gateway's loggers and uvicorn's alike; uvicorn applies it again, unchanged.
    log_config = logging_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(log_config)
    state: GatewayState = app.state.gateway
    server = uvicorn.Server(
        server_config(app, settings, state.metrics, log_config=log_config, log_level=settings.log_level)
    )
    server.run()
    return 0 if server.started else 3  # as uvicorn.run exits when start-up failed (e.g. the port is taken)


def _port_taken(host: str, port: int) -> str | None:
    """Why the gateway cannot listen on host:port, or None. Checked before start-up so the answer names the
    setting; uvicorn alone would log `[Errno 98]` after the whole app was built. (Another process may still take
    the port in between: then uvicorn's own error stands.)"""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):  # SO_REUSEADDR, as uvicorn binds
            return None
    except OSError as exc:
        return "the port is already in use" if exc.errno == errno.EADDRINUSE else str(exc)


if __name__ == "__main__":
    sys.exit(main())
