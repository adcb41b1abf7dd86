"""The command line: `vlm-client ocr|layout FILES_OR_DIRS... --gateway URL --out DIR [options]`.

Progress and per-file errors go to stderr, the summary table to stdout. Exit status: 0 when every file and
page succeeded, 1 when any file or page failed, 2 for a usage error (one line on stderr, no traceback),
130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from vlm_client.errors import UsageError
from vlm_client.files import collect_inputs
from vlm_client.pages import parse_spec
from vlm_client.requests import RequestOptions, gateway_root
from vlm_client.run import RunConfig, run
from vlm_client.summary import EXIT_USAGE

PROG = "vlm-client"
_FORMATS = ("md", "json", "csv")
_EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with its error on one line (no usage block), like every other usage error of the client."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also what `--help` shows)."""
    parser = _Parser(
        prog=PROG,
        description="Read page images, PDFs and TIFFs through the gateway's /v1/ocr or /v1/layout and write, "
        "per input, OUT/<path>.md, .json and (layout) .csv. Files whose outputs exist are skipped.",
        epilog="Exit status: 0 all succeeded, 1 a file or page failed, 2 usage error. "
        "Progress and errors go to stderr, the summary table to stdout.",
    )
    parser.add_argument("task", choices=("ocr", "layout"), help="ocr: text as Markdown; layout: boxes and text")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="files, or directories walked recursively")
    parser.add_argument(
        "--gateway",
        default=os.environ.get("VLM_GATEWAY_URL", "http://127.0.0.1:8000"),
        metavar="URL",
        help="the gateway's URL, with or without /v1 (default: $VLM_GATEWAY_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="where the outputs are written")
    parser.add_argument(
        "--format",
        metavar="LIST",
        help="comma-separated outputs among md, json, csv (csv: layout only); default md,json (+csv for layout)",
    )
    parser.add_argument("--pages", metavar="SPEC", help="pages of each PDF/TIFF, e.g. 1-3,7,10- (default all)")
    parser.add_argument(
        "--pages-per-request",
        type=_int_in(1, 100),
        default=8,
        metavar="K",
        help="a PDF/TIFF is sent as page ranges of at most K pages (default 8)",
    )
    parser.add_argument(
        "--concurrency", type=_int_in(1, 1024), default=4, metavar="N", help="requests in flight (default 4)"
    )
    parser.add_argument("--model", help="a served model with the task (default: the gateway's, dots-ocr)")
    parser.add_argument("--mode", choices=("all", "detect"), default="all", help="layout: detect = boxes only")
    parser.add_argument("--dpi", type=_int_in(36, 600), default=200, help="PDF rendering resolution (default 200)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds to wait for one request's answer (default 600)",
    )
    parser.add_argument("--force", action="store_true", help="redo files whose outputs already exist")
    return parser


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def _config(arguments: argparse.Namespace) -> RunConfig:
    """Check the options together and collect the inputs; raise UsageError for anything unusable."""
    formats = (
        [part.strip() for part in arguments.format.split(",") if part.strip()]
        if arguments.format is not None
        else ["md", "json", *(["csv"] if arguments.task == "layout" else [])]
    )
    unknown = [fmt for fmt in formats if fmt not in _FORMATS]
    if unknown or not formats:
        raise UsageError(f"--format {arguments.format!r}: choose among {', '.join(_FORMATS)}")
    if "csv" in formats and arguments.task != "layout":
        raise UsageError("--format csv lists layout elements: use `layout`, not `ocr`")
    if arguments.mode != "all" and arguments.task != "layout":
        raise UsageError("--mode applies to layout only")
    if not arguments.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    try:
        page_ranges = parse_spec(arguments.pages) if arguments.pages is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    root = gateway_root(arguments.gateway)
    out = arguments.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a directory")
    return RunConfig(
        inputs=collect_inputs(arguments.inputs),
        out=out,
        formats=list(dict.fromkeys(formats)),  # `md,md` writes once
        root=root,
        options=RequestOptions(task=arguments.task, model=arguments.model, mode=arguments.mode, dpi=arguments.dpi),
        pages=arguments.pages,
        page_ranges=page_ranges,
        pages_per_request=arguments.pages_per_request,
        concurrency=arguments.concurrency,
        timeout_s=arguments.timeout,
        force=arguments.force,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client; return the exit status (the console script exits with it)."""
    try:
        config = _config(build_parser().parse_args(argv))
        tally = asyncio.run(run(config, sys.stderr))
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Outputs are renamed into place whole, so an interrupted run leaves finished files only.
        print(f"{PROG}: interrupted; run again to resume", file=sys.stderr)
        return _EXIT_INTERRUPTED
    print(tally.table())
    return tally.exit_code
