"""`vlm-ui` / `python -m vlm_ui`: serve the web UI in front of a gateway.

    vlm-ui --gateway http://127.0.0.1:8000 --host 127.0.0.1 --port 7860 [--api-key KEY]

Each option also comes from the environment (VLM_UI_GATEWAY, VLM_UI_HOST, VLM_UI_PORT, VLM_UI_API_KEY,
VLM_UI_JOB_PAGES), so a container or `make ui` can set them without a command line.
"""

from __future__ import annotations

import argparse
import os
import sys

# Gradio reports usage to its makers unless told not to; this UI runs on private networks.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="vlm-ui", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--gateway", default=env.get("VLM_UI_GATEWAY", "http://127.0.0.1:8000"), help="gateway root URL"
    )
    parser.add_argument("--host", default=env.get("VLM_UI_HOST", "127.0.0.1"), help="address to listen on")
    parser.add_argument("--port", type=int, default=int(env.get("VLM_UI_PORT", "7860")), help="port to listen on")
    parser.add_argument(
        "--api-key",
        default=env.get("VLM_UI_API_KEY") or None,
        help="sent as `Authorization: Bearer` to the gateway (prefer the env variable: argv is visible in ps)",
    )
    parser.add_argument(
        "--job-pages",
        type=int,
        default=int(env.get("VLM_UI_JOB_PAGES", "8")),
        help="documents with more pages than this go through /v1/jobs with a progress bar",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so `--help` answers without loading Gradio (a second or two).
    from vlm_ui.app import build_app, launch_options
    from vlm_ui.gateway_client import GatewayClient

    client = GatewayClient(args.gateway, args.api_key)
    app = build_app(client, job_pages=args.job_pages)
    print(f"vlm-ui: serving http://{args.host}:{args.port} for the gateway at {client.base_url}", flush=True)
    try:
        app.launch(server_name=args.host, server_port=args.port, **launch_options())
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
