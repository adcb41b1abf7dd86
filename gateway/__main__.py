"""`python -m gateway`: serve the gateway with the settings from GATEWAY_* environment variables."""

from __future__ import annotations

import logging
import logging.config
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
    # JSON lines (or text) for the gateway's loggers and uvicorn's alike; uvicorn applies it again, unchanged.
    log_config = logging_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(log_config)
    state: GatewayState = app.state.gateway
    server = uvicorn.Server(
        server_config(app, settings, state.metrics, log_config=log_config, log_level=settings.log_level)
    )
    server.run()
    return 0 if server.started else 3  # as uvicorn.run exits when start-up failed (e.g. the port is taken)


if __name__ == "__main__":
    sys.exit(main())
