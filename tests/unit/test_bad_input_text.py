"""Bad input as the channels hand it over: a non-UTF-8 value arrives as text whose bad bytes are
kept as surrogate escapes (MQTT payloads, HTTP long-poll form values, whose echo restores the
same bytes); the parser names the first bad byte as it does for bytes, in one printable line."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from hypothesis import given
from hypothesis import strategies as st

from otatui.murano.form import decode_form, encode_form
from otatui.otau import ManifestError, ManifestErrorKind, parse_manifest


def test_surrogate_escaped_bytes_are_named_like_bytes() -> None:
    raw = b'{"version":"1.0","name":"Mise \xe0 jour","type":"JSON","payload":{}}'
    from_bytes = parse_manifest(raw)
    from_text = parse_manifest(raw.decode("utf-8", "surrogateescape"))
    assert isinstance(from_bytes, ManifestError) and isinstance(from_text, ManifestError)
    assert from_text.kind is ManifestErrorKind.NOT_UTF8
    assert (
        from_text.reason == from_bytes.reason == "manifest is not UTF-8 (invalid byte at offset 30)"
    )


def test_a_real_lone_surrogate_is_still_named_as_such() -> None:
    result = parse_manifest('{"version":"1","name":"\ud800"}')
    assert isinstance(result, ManifestError)
    assert "lone surrogate" in result.reason


@given(st.binary(min_size=1, max_size=200))
def test_any_bytes_give_the_same_answer_as_text_with_surrogate_escapes(raw: bytes) -> None:
    from_bytes = parse_manifest(raw)
    from_text = parse_manifest(raw.decode("utf-8", "surrogateescape"))
    assert type(from_text) is type(from_bytes)
    if isinstance(from_bytes, ManifestError) and isinstance(from_text, ManifestError):
        assert from_text.kind == from_bytes.kind
        assert from_text.reason == from_bytes.reason
        assert from_text.reason.isprintable()


@given(st.binary(max_size=200))
def test_a_long_poll_value_keeps_any_bytes_and_its_echo_is_the_same_bytes(raw: bytes) -> None:
    body = "config_otau=" + quote_from_bytes(raw, safe="")
    ((alias, value),) = decode_form(body, exact=True)
    assert alias == "config_otau"
    assert value.encode("utf-8", "surrogateescape") == raw
    assert encode_form([(alias, value)]) == body
