"""`python -m launchers`: plan GPU memory, start and stop the vLLM servers and the gateway, write compose files.

plan     --gpu-mem 16|12|N|auto [--models a,b] [--profile NAME]   what fits on the card, per model
up       [MODEL ...] [--profile NAME | --gpu-mem N]               start servers one by one, then the gateway
down                                                              stop everything `up` started
status                                                            what runs
compose  --gpu-mem N | --profile NAME [--out DIR]                 write compose/ files for a card
catalog                                                           every model, what it needs, where it fits
"""

from __future__ import annotations

import argparse
import sys

from gateway.models.memory_plan import PlanError
from launchers.errors import LauncherError
from launchers.ports import gateway_port_from_env
from launchers.run_state import DEFAULT_LOG_DIR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m launchers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="compute each model's share of the GPU")
    plan.add_argument("--gpu-mem", default=None, help="card memory in GiB (12, 16, any number) or 'auto'")
    plan.add_argument("--models", default=None, help="comma-separated models (default: the profile's)")
    plan.add_argument("--profile", default=None, help="a committed profile: 12gb or 16gb")

    up = commands.add_parser("up", help="start the vLLM servers one after another, then the gateway")
    up.add_argument("models", nargs="*", help="models to serve (default: the profile's)")
    up.add_argument("--profile", default=None)
    up.add_argument("--gpu-mem", default=None)
    up.add_argument("--gateway-port", type=int, default=None, help="default: GATEWAY_PORT, else 8000")
    up.add_argument("--startup-timeout", type=float, default=900.0, help="seconds each server may take to be healthy")
    up.add_argument("--log-dir", default=DEFAULT_LOG_DIR)

    for name, text in (("down", "stop everything `up` started"), ("status", "show what runs")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--log-dir", default=DEFAULT_LOG_DIR, help="where `up` keeps its logs and state file")

    compose = commands.add_parser("compose", help="write compose files for a card")
    compose.add_argument("--gpu-mem", default=None)
    compose.add_argument("--profile", default=None)
    compose.add_argument("--out", default=None, help="output folder (default compose/<profile>)")

    commands.add_parser("catalog", help="every model: size, KV cost, where it fits, what it is for")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "plan":
            from launchers.planner import run_plan

            return run_plan(args)
        if args.command == "up":
            from launchers.supervisor import run_up

            if args.gateway_port is None:
                try:
                    args.gateway_port = gateway_port_from_env()
                except ValueError as exc:
                    raise LauncherError(str(exc)) from None

            return run_up(args)
        if args.command == "down":
            from launchers.supervisor import run_down

            return run_down(args)
        if args.command == "status":
            from launchers.supervisor import run_status

            return run_status(args)
        if args.command == "compose":
            from launchers.compose import run_compose

            return run_compose(args)
        from launchers.catalog import run_catalog

        return run_catalog(args)
    except (LauncherError, PlanError) as exc:
        print(f"launchers: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
