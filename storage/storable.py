"""Text that a database cannot hold, made storable at the storage boundary.

PostgreSQL refuses NUL (U+0000) in text and JSON, and neither database driver can encode
a lone surrogate (U+D800..U+DFFF) as UTF-8. Each NUL becomes U+2400 (SYMBOL FOR NULL, ␀)
and each lone surrogate U+FFFD (REPLACEMENT CHARACTER); everything else is kept as it is.
The record's prompt_hash and prompt_chars are computed on the original text before this,
so a stored prompt can still be matched to the one that was sent."""

from __future__ import annotations

import re
from typing import Any

NUL_STANDIN = "\u2400"
SURROGATE_STANDIN = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _standin(match: re.Match[str]) -> str:
    return NUL_STANDIN if match.group() == "\x00" else SURROGATE_STANDIN


def storable_text(text: str) -> str:
    return _UNSTORABLE.sub(_standin, text) if _UNSTORABLE.search(text) else text


# Values that hold no text: passed through without a call (a decision row is mostly these, and
# storable() runs on the event loop for every request).
_PLAIN = frozenset({int, float, bool, type(None)})


def storable(value: Any) -> Any:
    """A value with every string in it (dict keys and nested values too) made storable."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is str:
        return storable_text(value)
    if isinstance(value, dict):
        return {(storable_text(k) if type(k) is str else storable(k)): (v if type(v) in _PLAIN else storable(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _PLAIN else storable(v) for v in value]
    if isinstance(value, str):  # a str subclass
        return storable_text(value)
    return value
