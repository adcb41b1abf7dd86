"""One request per body and target before measuring: proves each route really serves the endpoint.

A benchmark of a gateway that answers 404 quickly would look great, so the harness checks status,
shape, and that the gateway returns what the stand-in returns.
"""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.payloads import Bodies


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type", ""), resp.read()
    finally:
        conn.close()


def _content(raw: bytes) -> str:
    """choices[0].message.content of a non-stream reply; raises on anything else."""
    text = orjson.loads(raw)["choices"][0]["message"]["content"]
    if not isinstance(text, str):
        raise TypeError("content is not a string")
    return text


def _check_one(url: str, kind: str, body: bytes) -> dict[str, Any]:
    try:
        status, ctype, raw = _post(url, body)
    except OSError as exc:
        return {"ok": False, "why": f"request failed: {exc!r}"}
    out: dict[str, Any] = {"status": status, "content_type": ctype, "bytes": len(raw)}
    if not 200 <= status <= 299:
        out.update(ok=False, why=f"HTTP {status}: {raw[:200]!r}")
        return out
    if kind == "stream":
        events = [ln for ln in raw.split(b"\n") if ln.startswith(b"data:")]
        out["events"] = len(events)
        ok = "text/event-stream" in ctype and bool(events) and events[-1].strip() == b"data: [DONE]"
        out.update(ok=ok, why="" if ok else "not an SSE stream ending with data: [DONE]")
        return out
    try:
        out.update(ok=True, content=_content(raw), why="")
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        out.update(ok=False, why=f"not a chat.completion: {exc!r}")
    return out


def sanity_check(urls: dict[str, str], bodies: Bodies) -> dict[str, Any]:
    """Returns {"details": ..., "messages": [...], "failed": [...]}; never raises on a bad reply."""
    details: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for kind, path in (("chat", bodies.chat), ("stream", bodies.stream), ("image", bodies.image)):
        payload = path.read_bytes()
        for target, url in urls.items():
            res = _check_one(url, kind, payload)
            details[f"{target}/{kind}"] = res
            if not res["ok"]:
                failed.append(f"{target} {kind}: {res['why']}")
    messages = []
    d, g = details.get("direct/chat", {}), details.get("gateway/chat", {})
    if d.get("ok") and g.get("ok"):
        same = d["content"] == g["content"]
        messages.append(
            f"sanity: chat reply via gateway {'matches' if same else 'DIFFERS FROM'} direct: {g['content']!r}"
        )
        if not same:
            failed.append("gateway chat content differs from direct")
    ds, gs = details.get("direct/stream", {}), details.get("gateway/stream", {})
    if ds.get("ok") and gs.get("ok"):
        messages.append(f"sanity: stream has {ds['events']} SSE events direct, {gs['events']} via gateway")
        if ds["events"] != gs["events"]:
            failed.append("gateway stream event count differs from direct")
    if not failed:
        messages.append("sanity: chat, stream and 1 MB image requests all 2xx on both targets")
    return {"details": details, "messages": messages, "failed": failed}
