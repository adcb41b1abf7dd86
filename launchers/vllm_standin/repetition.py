"""vLLM's `repetition_detection` request field, validated and applied as vLLM does, on the stand-in's tokens.

vLLM (vllm/sampling_params.py RepetitionDetectionParams, vllm/v1/core/sched/utils.py check_stop) checks after
every generated token, once the token is not EOS, a stop token or the length cap: for each pattern size n
from min_pattern_size (0 reads as 1) to max_pattern_size, do the last n tokens repeat min_count times in a
row? If so generation ends with finish_reason "repetition" and stop_reason "repetition_detected", keeping the
tokens so far. Pattern sizes are tried in order and stop at the first n with n x min_count > tokens so far.

"The last n tokens repeat min_count times" is the same as: for the last n x (min_count - 1) positions j,
token[j] == token[j - n]. The stand-in keeps, per size, the length of the current run of such positions, so
a whole reply is scanned once (vLLM rescans the tail at each step; the verdict is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from .chat_request import RequestError, validation_error


@dataclass(frozen=True)
class RepetitionDetection:
    max_pattern_size: int
    min_pattern_size: int
    min_count: int


def parse_repetition_detection(body: object) -> RepetitionDetection | None:
    """The request's `repetition_detection`, or None; a 400 where vLLM's validation would refuse it."""
    value = body.get("repetition_detection") if isinstance(body, dict) else None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise validation_error("dict_type", "body.repetition_detection", value)
    numbers: dict[str, int] = {}
    for name in ("max_pattern_size", "min_pattern_size", "min_count"):
        number = value.get(name, 0)
        if isinstance(number, bool) or not isinstance(number, int):
            raise validation_error("int_type", f"body.repetition_detection.{name}", number)
        numbers[name] = number
    params = RepetitionDetection(**numbers)
    if params.max_pattern_size < 0 or params.min_pattern_size < 0 or params.min_pattern_size > params.max_pattern_size:
        raise RequestError(
            400,
            "max_pattern_size, min_pattern_size must be >=0, with min_pattern_size <= max_pattern_size",
            "BadRequestError",
            "repetition_detection",
        )
    if params.max_pattern_size > 0 and params.min_count < 2:
        raise RequestError(400, "min_count must be >= 2", "BadRequestError", "repetition_detection")
    return params


def repetition_end(tokens: list[str], params: RepetitionDetection, limit: int) -> int | None:
    """How many tokens vLLM would have generated when it detected a loop, or None (also when `limit`, the
    length cap, comes first: vLLM checks the cap before the repetition)."""
    if params.max_pattern_size <= 0 or params.min_count < 2:
        return None
    low = max(params.min_pattern_size, 1)
    sizes = range(low, params.max_pattern_size + 1)
    runs = dict.fromkeys(sizes, 0)
    for index, token in enumerate(tokens):
        length = index + 1
        for size in sizes:
            runs[size] = runs[size] + 1 if index >= size and tokens[index - size] == token else 0
        if length >= limit:
            return None
        for size in sizes:
            if size * params.min_count > length:
                break
            if runs[size] >= size * (params.min_count - 1):
                return length
    return None
