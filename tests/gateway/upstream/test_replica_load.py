"""Reading vLLM's queue length from /metrics: the parser, and the scraper against the stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from gateway.upstream.replica_load import LoadScraper, parse_waiting
from gateway.upstream.served_models import Upstream
from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL

# The shape vLLM's PrometheusStatLogger writes (two engines under data parallelism), with neighbours whose
# names share the prefix.
_EXPOSITION = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="dots-ocr"} 8.0
vllm:num_requests_running{engine="1",model_name="dots-ocr"} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="dots-ocr"} 3.0
vllm:num_requests_waiting{engine="1",model_name="dots-ocr"} 2.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="dots-ocr",reason="capacity"} 40.0
vllm:num_requests_waiting_total 99
"""


def test_waiting_is_summed_over_engines_and_neighbours_are_ignored() -> None:
    assert parse_waiting(_EXPOSITION) == 5.0


def test_no_series_is_unknown_not_zero() -> None:
    assert parse_waiting("# HELP other\nother_metric 1\n") is None


def test_unlabelled_series_and_timestamps_are_read() -> None:
    assert parse_waiting("vllm:num_requests_waiting 4 1700000000000\n") == 4.0


def test_a_malformed_value_is_skipped() -> None:
    assert parse_waiting('vllm:num_requests_waiting{engine="0"} NaNa\nvllm:num_requests_waiting 1\n') == 1.0


async def test_the_scraper_reads_a_queue_from_the_standin(make_standin: Callable[..., StandinServer]) -> None:
    # One sequence at a time and a second of latency: of four requests, three wait.
    standin = make_standin(CHAT_MODEL, max_num_seqs=1, latency_s=1.0)
    upstream = Upstream(standin.base_url)
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    scraper = LoadScraper({}, interval_s=60, timeout_s=2)
    async with httpx.AsyncClient(timeout=10) as client:
        requests = [
            asyncio.create_task(client.post(standin.base_url + "/chat/completions", json=body)) for _ in range(4)
        ]
        for _ in range(50):
            await scraper.scrape(upstream)
            if upstream.queue_waiting == 3.0:
                break
            await asyncio.sleep(0.02)
        assert upstream.queue_waiting == 3.0
        await asyncio.gather(*requests)
    await scraper.scrape(upstream)
    assert upstream.queue_waiting == 0.0
    await scraper.close()


async def test_an_unreachable_replica_has_an_unknown_queue(make_standin: Callable[..., StandinServer]) -> None:
    standin = make_standin(CHAT_MODEL)
    upstream = Upstream(standin.base_url, queue_waiting=2.0)
    standin.stop()
    scraper = LoadScraper({}, interval_s=60, timeout_s=1)
    await scraper.scrape(upstream)
    assert upstream.queue_waiting is None
    await scraper.close()
