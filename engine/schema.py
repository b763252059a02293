"""Small explicit checks for saved JSON documents: a document read back from disk is untrusted input.

Each reader (the gallery index, a session) turns raw JSON into its own typed values with these helpers; the
first thing wrong raises `SchemaError` naming where it is (`references[2].file`) and what was expected, and
`engine.persistence` then treats the file as damaged and tries its backup.
"""
from __future__ import annotations

import math
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Iterator

_MISSING = object()
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
               dict: "an object", type(None): "null"}


class SchemaError(ValueError):
    """A document that is valid JSON but not of the expected shape."""


def describe(value: Any) -> str:
    """What a JSON value is, in words, for messages."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def expect(value: Any, types: type | tuple[type, ...], where: str) -> Any:
    """`value` if it is one of `types` (a bool is not a number here, unlike in Python), else SchemaError."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join(dict.fromkeys(_TYPE_NAMES.get(t, t.__name__) for t in types))
        raise SchemaError(f"{where}: expected {names}, found {describe(value)}")
    return value


def member(row: Any, key: str, types: type | tuple[type, ...], where: str, default: Any = _MISSING) -> Any:
    """`row[key]` checked by `expect`; `default` when the key is absent (absent and no default: SchemaError)."""
    expect(row, dict, where)
    if key not in row:
        if default is _MISSING:
            raise SchemaError(f"{where}: '{key}' is missing")
        return default
    return expect(row[key], types, f"{where}.{key}")


def items(value: Any, where: str) -> Iterator[tuple[Any, str]]:
    """The elements of a JSON list, each with its place for messages (`where[i]`)."""
    for index, item in enumerate(expect(value, list, where)):
        yield item, f"{where}[{index}]"


def number(value: Any, where: str, minimum: float | None = None) -> float:
    """A finite JSON number (not NaN or infinity), at least `minimum` when given."""
    value = expect(value, (int, float), where)
    if not math.isfinite(value) or minimum is not None and value < minimum:
        bound = f" of at least {minimum:g}" if minimum is not None else ""
        raise SchemaError(f"{where}: expected a finite number{bound}, found {value!r}")
    return value


def whole(value: Any, where: str, minimum: int | None = None) -> int:
    """A JSON whole number, at least `minimum` when given."""
    value = expect(value, int, where)
    if minimum is not None and value < minimum:
        raise SchemaError(f"{where}: expected a whole number of at least {minimum}, found {value}")
    return value


def one_of(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise SchemaError(f"{where}: expected one of {', '.join(map(repr, choices))}, found {value!r}")
    return value


def file_name(value: Any, where: str) -> str:
    """A bare file name (no folder part, not absolute, not `..`), so a stored name always stays in its folder
    on every platform: `../../x`, `/etc/x` and `C:\\x` are refused."""
    value = expect(value, str, where)
    if (value in ("", ".", "..") or "\0" in value or PurePosixPath(value).name != value
            or PureWindowsPath(value).name != value):
        raise SchemaError(f"{where}: {value!r} is not a plain file name")
    return value
