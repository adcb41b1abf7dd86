"""A small tolerant JSON reader for model output that may be cut off, slightly malformed or wrapped in a fence.

`json.loads` is all or nothing: one missing comma or a generation stopped by `max_tokens` loses the whole page.
This reader walks the text once, left to right, never backtracking, and keeps everything that was complete
before the point where it could not go on:

- The text ends (or breaks) inside a value: every enclosing array or object comes back as `PartialList` /
  `PartialDict` holding only its complete members, so a caller can tell a closed element from a cut one.
  A scalar that was cut (a string without its closing quote, a number that could still grow) is left out.
- Two values in a row without a comma (`}{`, `}\\n{`, `"a" "b"`) are read as if the comma were there, and
  counted in `missing_commas`.
- A trailing comma before `]` or `}` is accepted; anything after the first top-level value is ignored.
- Inside strings: an unknown escape (`\\a`, common when LaTeX is not escaped) is kept literally, raw control
  characters are kept, and a lone UTF-16 surrogate becomes U+FFFD so the result can always be re-encoded.

It never raises: anything it cannot read ends the readable part, exactly like a truncation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

# Deeper nesting than this is no layout output; stopping there keeps the recursion far from Python's limit.
_MAX_DEPTH = 64
_WHITESPACE = " \t\r\n"
_NUMBER_CHARS = frozenset("+-0123456789.eE")
_VALUE_START = frozenset('{["-0123456789tfn')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS: tuple[tuple[str, JSONValue], ...] = (("true", True), ("false", False), ("null", None))
_HEX = frozenset("0123456789abcdefABCDEF")


class PartialList(list[JSONValue]):
    """An array the text ended or broke inside; it holds its complete items (the last may itself be partial)."""


class PartialDict(dict[str, JSONValue]):
    """An object the text ended or broke inside; it holds the members that were complete."""


def is_partial(value: JSONValue) -> bool:
    """Whether `value` is a container the text ended or broke inside."""
    return isinstance(value, PartialList | PartialDict)


@dataclass(frozen=True, slots=True)
class Salvage:
    """What the reader found at the start of a model's answer."""

    found: bool  # the answer starts with `[` or `{` (after whitespace and an optional ``` fence line)
    value: JSONValue  # the top-level value (a list or dict, maybe partial); None when nothing was found
    missing_commas: int  # separators the reader had to assume


class _Cut:
    """Marks a scalar (or object key) that the text ended or broke inside."""


_CUT = _Cut()


def read_json(text: str) -> Salvage:
    """Read the JSON array or object an answer starts with, as far as it goes. Never raises."""
    start = _json_start(text)
    if start is None:
        return Salvage(found=False, value=None, missing_commas=0)
    reader = _Reader(text, start)
    value = reader.value(0)
    # A top-level value starts with `[` or `{`, so it is a container, never a cut scalar.
    return Salvage(found=True, value=None if isinstance(value, _Cut) else value, missing_commas=reader.missing_commas)


def _json_start(text: str) -> int | None:
    """Where the JSON begins: after leading whitespace and an optional opening ``` fence line (```json)."""
    pos = len(text) - len(text.lstrip())
    if text.startswith("```", pos):
        # A fence's info string ("json") runs to the end of its line; the closing fence is trailing text.
        newline = text.find("\n", pos)
        if newline < 0:
            return None
        pos = newline + 1
        pos += len(text[pos:]) - len(text[pos:].lstrip())
    return pos if text.startswith(("[", "{"), pos) else None


class _Reader:
    """One pass over `text` from `pos`; each method consumes one value and leaves `pos` after it."""

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos
        self.missing_commas = 0

    def _skip_whitespace(self) -> str | None:
        """Move past whitespace; the next character, or None at the end of the text."""
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos
        return text[pos] if pos < len(text) else None

    def value(self, depth: int) -> JSONValue | _Cut:
        char = self._skip_whitespace()
        if char is None or depth > _MAX_DEPTH:
            return _CUT
        if char == "{":
            return self._object(depth)
        if char == "[":
            return self._array(depth)
        if char == '"':
            return self._string()
        if char == "-" or char.isdigit():
            return self._number()
        return self._literal()

    def _array(self, depth: int) -> JSONValue:
        self.pos += 1  # the `[`
        items: list[JSONValue] = []
        expect_value = True
        while True:
            char = self._skip_whitespace()
            if char is None:
                return PartialList(items)
            if char == "]":
                self.pos += 1
                return items
            if not expect_value:
                if char == ",":
                    self.pos += 1
                    expect_value = True
                    continue
                if char not in _VALUE_START:
                    return PartialList(items)  # unreadable: the readable part ends here
            item = self.value(depth + 1)
            if isinstance(item, _Cut):
                return PartialList(items)
            # A comma was assumed only if what followed really was a value (`} note` is garbage, not `null`).
            if not expect_value:
                self.missing_commas += 1
            items.append(item)
            if is_partial(item):
                return PartialList(items)
            expect_value = False

    def _object(self, depth: int) -> JSONValue:
        self.pos += 1  # the `{`
        members: dict[str, JSONValue] = {}
        expect_key = True
        while True:
            char = self._skip_whitespace()
            if char is None:
                return PartialDict(members)
            if char == "}":
                self.pos += 1
                return members
            if not expect_key and char == ",":
                self.pos += 1
                expect_key = True
                continue
            if char != '"':
                return PartialDict(members)  # unreadable (or not a key): the readable part ends here
            key = self._string()
            if isinstance(key, _Cut) or self._skip_whitespace() != ":":
                return PartialDict(members)
            self.pos += 1
            member = self.value(depth + 1)
            if isinstance(member, _Cut):
                return PartialDict(members)
            if not expect_key:
                self.missing_commas += 1  # `"a": 1 "b": 2`
            members[key] = member
            if is_partial(member):
                return PartialDict(members)
            expect_key = False

    def _string(self) -> str | _Cut:
        text = self.text
        parts: list[str] = []
        pos = self.pos + 1  # after the opening quote
        quote = text.find('"', pos)
        while True:
            if quote < 0:
                return _CUT  # no closing quote: the text ended inside the string
            backslash = text.find("\\", pos, quote)
            if backslash < 0:
                parts.append(text[pos:quote])
                self.pos = quote + 1
                return "".join(parts)
            parts.append(text[pos:backslash])
            decoded = self._escape(backslash)
            if decoded is None:
                return _CUT
            pos = decoded[1]
            parts.append(decoded[0])
            if pos > quote:  # that escape was `\"`: find the next candidate closing quote
                quote = text.find('"', pos)

    def _escape(self, at: int) -> tuple[str, int] | None:
        """Decode the escape at `at` (a backslash): the text it stands for and where reading goes on."""
        text = self.text
        if at + 1 >= len(text):
            return None
        code = text[at + 1]
        if code in _ESCAPES:
            return _ESCAPES[code], at + 2
        if code != "u":
            return text[at : at + 2], at + 2  # not a JSON escape (e.g. `\alpha`): keep it as written
        digits = text[at + 2 : at + 6]
        if len(digits) < 4 and all(c in _HEX for c in digits):
            return None  # `\u00` at the very end: cut inside the escape
        unit = self._hex4(at + 2)
        if unit is None:
            return text[at : at + 2], at + 2  # a malformed `\u`: keep it as written
        if 0xD800 <= unit < 0xDC00 and text.startswith("\\u", at + 6):
            low = self._hex4(at + 8)
            if low is not None and 0xDC00 <= low < 0xE000:
                return chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)), at + 12
        # A lone surrogate cannot be encoded as UTF-8 later, so it becomes the replacement character.
        return ("\ufffd" if 0xD800 <= unit < 0xE000 else chr(unit)), at + 6

    def _hex4(self, at: int) -> int | None:
        digits = self.text[at : at + 4]
        return int(digits, 16) if len(digits) == 4 and all(c in _HEX for c in digits) else None

    def _number(self) -> JSONValue | _Cut:
        text, start = self.text, self.pos
        end = start
        while end < len(text) and text[end] in _NUMBER_CHARS:
            end += 1
        if end == len(text):
            return _CUT  # `12` at the very end may have been `123`: a number is only complete once followed
        token = text[start:end]
        self.pos = end
        try:
            return int(token)
        except ValueError:
            pass  # a fraction or exponent, or an integer too long for int(): float() reads both
        try:
            return float(token)
        except ValueError:
            return _CUT

    def _literal(self) -> JSONValue | _Cut:
        for word, value in _LITERALS:
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        return _CUT
