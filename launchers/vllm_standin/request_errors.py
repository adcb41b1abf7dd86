"""The errors vLLM answers a chat request with before generating, and the texts it gives them."""

from __future__ import annotations

# The message pydantic gives for each error type vLLM's validation handler prints.
_PYDANTIC_MESSAGES = {
    "missing": "Field required",
    "list_type": "Input should be a valid list",
    "dict_type": "Input should be a valid dictionary",
    "string_type": "Input should be a valid string",
    "bool_type": "Input should be a valid boolean",
    "int_type": "Input should be a valid integer",
    "json_invalid": "JSON decode error",
    "model_attributes_type": "Input should be a valid dictionary or object to extract fields from",
    "value_error": "Value error, {}",
}


class RequestError(Exception):
    """A request vLLM would refuse before generating: rendered as its error body."""

    def __init__(self, status: int, message: str, err_type: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param


def parameter_error(message: str, parameter: str, value: object = None) -> RequestError:
    """vLLM's VLLMValidationError: a 400 whose message ends with "(parameter=..., value=...)"."""
    suffix = f"parameter={parameter}" if value is None else f"parameter={parameter}, value={value}"
    return RequestError(400, f"{message} ({suffix})", "BadRequestError", parameter)


def validation_error(kind: str, loc: str, value: object, reason: str = "") -> RequestError:
    """A pydantic validation error as vLLM renders it: 400, type "Bad Request", `param` = loc."""
    msg = _PYDANTIC_MESSAGES[kind].format(reason)
    detail = {"type": kind, "loc": loc, "msg": msg, "input": _summarize(value)}
    return RequestError(400, f"1 validation error:\n  {detail}", "Bad Request", loc)


def _summarize(value: object) -> object:
    # Like vLLM's validation handler: containers are described, never echoed whole.
    if isinstance(value, list | tuple | dict):
        return f"<{type(value).__name__} of {len(value)} items>"
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "...[truncated]"
    return value
