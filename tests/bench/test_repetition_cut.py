"""bench/repetition_cut.py against the stand-in answering a loop: "with" ends early, "without" runs on."""

from __future__ import annotations

import pytest

from bench import repetition_cut
from launchers.vllm_standin import StandinConfig, StandinServer


def test_the_bench_shows_the_loop_cut_short(capsys: pytest.CaptureFixture[str]) -> None:
    loop = "| 1 | 2 | 3 |\n" * 400
    server = StandinServer(StandinConfig(models=("dots-ocr",), reply=loop, max_model_len=32768)).start()
    try:
        assert repetition_cut.main(["--base-url", server.base_url, "--rounds", "1"]) == 0
    finally:
        server.stop()
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "{'repetition': 1}" in rows["with"]
    assert "{'stop': 1}" in rows["without"]
    assert float(rows["with"].split()[1]) < float(rows["without"].split()[1])
