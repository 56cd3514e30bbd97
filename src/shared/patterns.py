"""Regular expressions people write in configs: checked when the config loads, not on first use.

`Regex` is the type of such a field in any plug-in's Params (a metric's `pattern`, the Slack
source's `include_regex`): a pattern that does not compile is a config error naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator


def compile_pattern(pattern: str, *, flags: int = 0) -> re.Pattern[str]:
    """Compile a user pattern, turning re.error into a ValueError pydantic reports as a config error."""
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def _compiles(pattern: str) -> str:
    compile_pattern(pattern)
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]
