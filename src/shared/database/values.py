"""Python values -> what Postgres can store, applied to every text, float and JSON we write.

Two things Postgres refuses that items and metrics do produce:

- NUL characters: neither `text` nor `jsonb` can hold U+0000. We replace each NUL with U+FFFD
  (the Unicode replacement character), so the row is stored and the spot stays visible; every other
  character, including astral-plane emoji and lone combining marks, round-trips unchanged.
- NaN and infinities: `jsonb` rejects them, and a NaN score would poison AVG(). They become NULL
  (in columns) and null (inside JSON).
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pydantic_core

NUL = "\x00"
REPLACEMENT = "\ufffd"


def clean_text(value: object) -> str | None:
    if type(value) is str:
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def clean_float(value: object) -> float | None:
    if type(value) is float:  # the common case, checked first: this runs for every score
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def to_json(value: Any) -> str:
    """Serialise for a jsonb column; the fast path is one `json.dumps` for clean data."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:  # NaN or infinity somewhere inside
        return json.dumps(_clean_json(value), ensure_ascii=False, allow_nan=False, default=str)
    if NUL in text or "\\u0000" in text:
        return json.dumps(_clean_json(value), ensure_ascii=False, allow_nan=False, default=str)
    return text


# orjson handles plain JSON data (str keys, str/int/float/bool/None, lists, tuples) and writes
# NaN/inf as null like pydantic-core; anything else (datetimes, dataclasses, models, subclasses,
# sets, non-str keys, huge ints) raises, and pydantic-core serialises the value as it always did.
_ORJSON_PLAIN = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def to_json_bytes(value: Any) -> bytes:
    """`to_json` for the bulk path: Rust serialisers (NaN/inf -> null), UTF-8 bytes.

    Registered as psycopg's jsonb dumper for COPY, where it runs once per result row: orjson
    first (about 3x faster on plain data), pydantic-core for everything orjson refuses. A NUL
    shows up as the escape `\\u0000`; only then is the value cleaned and serialised again.
    """
    try:
        data = orjson.dumps(value, option=_ORJSON_PLAIN)
    except TypeError:  # orjson.JSONEncodeError: a type it does not serialise the way we want
        data = pydantic_core.to_json(value, inf_nan_mode="null", fallback=str)
    if b"\\u0000" in data:
        data = pydantic_core.to_json(_clean_json(value), inf_nan_mode="null", fallback=str)
    return data


def _clean_json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean_json(v) for v in value]
    return value
