"""CLI: serve a simulated `vllm serve` until SIGINT/SIGTERM.

python -m launchers.vllm_standin --host 127.0.0.1 --port 9100 --model NAME [--model NAME2 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from .app import create_standin_app
from .config import DEFAULT_REPLY, StandinConfig
from .dots_answers import dots_ocr_responder
from .known_pages import load_known_pages


def build_parser() -> argparse.ArgumentParser:
    """The stand-in's command line, named after the `vllm serve` flags it imitates."""
    parser = argparse.ArgumentParser(
        prog="python -m launchers.vllm_standin",
        description="Simulated vLLM OpenAI-compatible server (no GPU, no model).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    # uvicorn's default, so `vllm serve`'s: aiohttp's own 128 overflows when a thousand clients connect at once.
    parser.add_argument("--backlog", type=int, default=2048, help="listen backlog (default 2048, as vllm serve)")
    parser.add_argument(
        "--model", action="append", required=True, help="served model name; repeat for more (first is reported)"
    )
    parser.add_argument("--root", default="", help="`root` in /v1/models (default: the first model)")
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="0 = no pacing")
    parser.add_argument("--max-num-seqs", type=int, default=256)
    reply = parser.add_mutually_exclusive_group()
    reply.add_argument("--reply", default=None, help="reply text for every request")
    reply.add_argument("--reply-file", type=Path, default=None, help="file holding the reply text")
    parser.add_argument("--chunk-tokens", type=int, default=1, help="tokens per streamed chunk")
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` on /v1")
    parser.add_argument("--error-shape", choices=("nested", "flat"), default="nested")
    parser.add_argument(
        "--answers",
        choices=("reply", "dots-ocr"),
        default="reply",
        help="dots-ocr: answer document prompts in dots.ocr's output format (layout JSON, Markdown)",
    )
    parser.add_argument(
        "--documents",
        type=Path,
        nargs="*",
        default=[],
        help="with --answers dots-ocr: PDFs whose pages, when sent, are answered from their own text layer",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> StandinConfig:
    """Turn parsed arguments into a `StandinConfig`."""
    if args.reply_file is not None:
        reply = args.reply_file.read_text(encoding="utf-8")
    else:
        reply = args.reply if args.reply is not None else DEFAULT_REPLY
    return StandinConfig(
        models=tuple(args.model),
        root=args.root,
        max_model_len=args.max_model_len,
        latency_s=args.latency_ms / 1000,
        tokens_per_s=args.tokens_per_s,
        max_num_seqs=args.max_num_seqs,
        reply=reply,
        chunk_tokens=args.chunk_tokens,
        api_key=args.api_key,
        error_shape=args.error_shape,
        responder=dots_ocr_responder(reply, load_known_pages(args.documents)) if args.answers == "dots-ocr" else None,
    )


async def serve(config: StandinConfig, host: str, port: int, backlog: int = 2048) -> None:
    """Serve `config` on HOST:PORT until SIGINT or SIGTERM, then shut down cleanly."""
    runner = web.AppRunner(create_standin_app(config), handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=backlog).start()
        bound = runner.addresses[0][1]
        models = ",".join(config.models)
        print(f"vllm stand-in (simulated, no GPU) serving {models} on http://{host}:{bound}/v1", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop  # optional: faster, as in `vllm serve`
    except ImportError:
        return asyncio.new_event_loop
    new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"vllm stand-in: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config, args.host, args.port, args.backlog))
    except OSError as exc:  # typically the port is taken
        print(f"vllm stand-in: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
