"""bench/stream_load.py at a tiny scale, so the 1,000-stream benchmark cannot rot between runs.

The whole bench (stand-in and gateway as subprocesses, both columns, the table, the JSON) with 20 clients
and 2 s streams; and the client's error accounting against an in-process stand-in with faults injected.
Counts are asserted, never timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from bench import stream_load
from launchers.vllm_standin import StandinServer

CLIENTS = 20


def test_bench_at_tiny_scale_completes_every_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--clients", str(CLIENTS), "--hold-s", "2", "--idle-s", "0", "--no-pin", "--results-dir", str(tmp_path)]

    assert stream_load.main(argv) == 0

    result = orjson.loads((tmp_path / stream_load.RESULT_FILE).read_bytes())
    assert "error" not in result
    columns = {c["target"]: c for c in result["columns"]}
    assert set(columns) == {"direct", "gateway"}
    for column in columns.values():
        assert column["sent"] == CLIENTS
        assert column["first_event"] == CLIENTS
        assert column["completed"] == CLIENTS
        assert column["errors"] == dict.fromkeys(stream_load.ERROR_KINDS, 0)
        # Every stream was open at once, as the client, the stand-in and (through it) the gateway saw it.
        assert column["peak_open_client"] == CLIENTS
        assert column["peak_running_standin"] == CLIENTS
        assert column["peak_waiting_standin"] == 0
        assert (column["standin_completed"], column["standin_aborted"]) == (CLIENTS, 0)
    gateway = columns["gateway"]
    assert gateway["peak_in_flight_gateway"] == CLIENTS
    chat_ok = [
        value
        for key, value in gateway["gateway_counters"].items()
        if key.startswith("gateway_requests_total{") and "chat/completions" in key and 'status="200"' in key
    ]
    assert chat_ok == [CLIENTS]
    assert gateway["gateway_peak_rss_kb"] > 0
    assert result["gateway"]["hwm_kb"] >= result["gateway"]["idle_rss_kb"] > 0
    # Both servers were stopped (an exit code means the process was reaped, not left behind).
    assert set(result["exit_codes"]) == {"gateway", "stand-in"}
    assert None not in result["exit_codes"].values()

    # The printed table carries the same counts.
    rows = {label.strip(): (direct, gw) for label, direct, gw in stream_load.table_rows(result)}
    assert rows["clients requested"] == (str(CLIENTS), str(CLIENTS))
    assert rows["streams that got their first event"] == (str(CLIENTS), str(CLIENTS))
    assert rows["peak open streams (client count)"] == (str(CLIENTS), str(CLIENTS))
    assert rows["completed ([DONE], 8 tokens, text ok)"] == (str(CLIENTS), str(CLIENTS))
    assert rows["errors, total"] == ("0", "0")
    assert rows["gateway upstream errors / retries / ejections"] == ("-", "0 / 0 / 0")
    out = capsys.readouterr().out
    assert stream_load.render_table(result) in out


def _run(server: StandinServer, clients: int, expected: stream_load.Expected) -> stream_load.Tally:
    tally = stream_load.Tally()
    url = f"{server.base_url}/chat/completions"
    asyncio.run(stream_load.run_streams(url, clients, expected, ramp_s=0, deadline_s=10, tally=tally))
    return tally


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"fail_next": 2}, "http_status"),
        ({"stream_cut_after": 2}, "broken"),
        ({"stream_error_after": 2}, "error_event"),
    ],
)
def test_client_counts_each_kind_of_failure(
    make_standin: Callable[..., StandinServer], fault: dict[str, int], kind: str
) -> None:
    tokens = 5
    server = make_standin(reply=stream_load.reply_text(tokens))
    server.state.faults.update(fault)
    failed = 2 if "fail_next" in fault else 4

    tally = _run(server, 4, stream_load.Expected(tokens, stream_load.reply_text(tokens)))

    assert dict(tally.errors) == {kind: failed}
    assert tally.completed == 4 - failed
    assert kind in tally.last_error


def test_client_checks_the_token_count(make_standin: Callable[..., StandinServer]) -> None:
    server = make_standin(reply=stream_load.reply_text(3))

    tally = _run(server, 2, stream_load.Expected(4, stream_load.reply_text(4)))

    assert dict(tally.errors) == {"token_count": 2}
    assert tally.completed == 0
