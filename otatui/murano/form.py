"""`application/x-www-form-urlencoded` both ways, as the Murano HTTP device API uses it.

Values are text (JSON travels as JSON text inside the value). Encoding percent-encodes every byte
outside the unreserved set (a space becomes ``%20``, never ``+``), which any form decoder reads back
identically. Decoding accepts ``+`` for a space, as form encoding allows, and UTF-8 percent
escapes; invalid UTF-8 is an error rather than silently replaced characters, because the value's
exact text matters (the acknowledgement echoes it byte for byte). Values that must reach the
device whatever they hold (the long poll's) are decoded with ``exact=True``: bytes that are not
UTF-8 are kept as surrogate escapes, as the MQTT channel keeps them, so the manifest parser refuses
such a value with a clear reason and its acknowledgement (encoded back) is the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


class FormError(ValueError):
    """A form body that cannot be decoded (not UTF-8 once unescaped)."""


def encode_component(text: str) -> str:
    """Percent-encode one name or value (UTF-8; only ``A-Za-z0-9-._~`` left as is).

    Surrogate escapes (bytes of a value that is not UTF-8, see `decode_component`) become those
    bytes again."""
    return quote(text, safe="", encoding="utf-8", errors="surrogateescape")


def decode_component(text: str, *, exact: bool = False) -> str:
    """Undo form encoding of one name or value (``+`` is a space); with ``exact``, bytes that
    are not UTF-8 are kept as surrogate escapes instead of being an error."""
    errors = "surrogateescape" if exact else "strict"
    try:
        return unquote(text.replace("+", " "), encoding="utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise FormError(f"form value is not UTF-8 text ({exc.reason})") from None


def encode_form(pairs: Iterable[tuple[str, str]]) -> str:
    """``a=v&b=w`` with both sides percent-encoded, in the given order."""
    return "&".join(f"{encode_component(k)}={encode_component(v)}" for k, v in pairs)


def decode_form(body: str, *, exact: bool = False) -> list[tuple[str, str]]:
    """The (name, value) pairs of a form body, in order; a name without ``=`` has value ``""``.

    ``exact``: values that are not UTF-8 keep their bytes as surrogate escapes (names must be
    UTF-8 either way)."""
    pairs: list[tuple[str, str]] = []
    for segment in body.strip("\r\n").split("&"):
        if not segment:
            continue
        name, _, value = segment.partition("=")
        pairs.append((decode_component(name), decode_component(value, exact=exact)))
    return pairs


def alias_query(aliases: Iterable[str]) -> str:
    """The query naming aliases to read or watch: ``a&b`` (bare names, no ``=``)."""
    names = [encode_component(a) for a in aliases]
    if not names:
        raise ValueError("at least one alias is needed")
    return "&".join(names)
