"""Payload items: content id vs external URL, sha256 pins, safe file names, refusals."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otatui.otau import PayloadItemError, PayloadSource, parse_payload_item
from otatui.otau.payload import MAX_FILENAME_BYTES, fit_filename, safe_filename

HEX = "0123456789abcdef" * 4


def assert_safe_filename(name: str) -> None:
    assert name
    assert "/" not in name
    assert "\\" not in name
    assert not name.startswith(".")
    assert len(name.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert all(ch.isprintable() for ch in name)


# ---------------------------------------------------------------------------------------------
# content ids


@pytest.mark.parametrize("raw", ["firmware_updatev102.txt", "fw 1.0.bin", "MANIFEST", "é-fw.bin"])
def test_content_id_without_host(raw: str) -> None:
    item = parse_payload_item(raw)
    assert item.source is PayloadSource.CONTENT
    assert item.content_id == raw
    assert item.url is None
    assert item.host is None
    assert item.sha256 is None
    assert not item.pinned
    assert item.filename == raw
    assert item.raw == raw


def test_content_id_with_sha256_fragment() -> None:
    item = parse_payload_item(f"fw.bin#sha256={HEX.upper()}")
    assert item.source is PayloadSource.CONTENT
    assert item.content_id == "fw.bin"
    assert item.filename == "fw.bin"
    assert item.sha256 == HEX
    assert item.pinned
    assert item.raw == f"fw.bin#sha256={HEX.upper()}"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("example.com/file", "a content id has no '/' and a URL needs http(s)://"),
        ("/etc/passwd", "a content id has no '/'"),
        ("dir/fw.bin", "a content id has no '/'"),
        ("..", "'..'"),
        ("fw..bin", "'..'"),
        ("a\\b", "'\\'"),
        (".hidden", "starts with '.'"),
        ("fw\x00.bin", "control or invisible characters"),
        ("fw\n.bin", "control or invisible characters"),
        ("fw\u202e.bin", "control or invisible characters"),
        ("fw\xad.bin", "control or invisible characters"),
        ("fw\u2028.bin", "control or invisible characters"),
        (" fw.bin", "whitespace"),
        ("fw.bin ", "whitespace"),
        ("a" * 256, "255 bytes"),
        ("é" * 128, "255 bytes"),
        ("fw.bin#v2", "'#' is only allowed as #sha256"),
        ("fw.bin#", "'#' is only allowed as #sha256"),
        ("fw.bin#sha256=abc", "not 64 hex digits (3 characters)"),
        ("fw.bin#sha256=" + "g" * 64, "not 64 hex digits"),
        ("fw.bin#sha256:" + HEX, "malformed sha256"),
        ("#sha256=" + HEX, "empty content id"),
    ],
)
def test_bad_content_ids_are_refused(raw: str, needle: str) -> None:
    with pytest.raises(PayloadItemError) as caught:
        parse_payload_item(raw)
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message


def test_content_id_of_exactly_255_bytes_is_accepted() -> None:
    assert parse_payload_item("a" * 255).filename == "a" * 255


# ---------------------------------------------------------------------------------------------
# external URLs


def test_external_url() -> None:
    item = parse_payload_item("https://Example.COM:8443/dir/fw-1.2.bin?sig=abc")
    assert item.source is PayloadSource.EXTERNAL
    assert item.url == "https://Example.COM:8443/dir/fw-1.2.bin?sig=abc"
    assert item.content_id is None
    assert item.host == "example.com"
    assert item.filename == "fw-1.2.bin"
    assert not item.pinned


def test_external_url_fragment_is_never_in_url() -> None:
    raw = f"http://h/fw.bin#sha256={HEX}"
    item = parse_payload_item(raw)
    assert item.url == "http://h/fw.bin"
    assert item.sha256 == HEX
    assert item.raw == raw


def test_sha256_among_other_fragment_parts_and_unknown_fragments_dropped() -> None:
    assert parse_payload_item(f"https://h/a#x=1&SHA256={HEX.upper()}").sha256 == HEX
    dropped = parse_payload_item("https://h/a#section-2")
    assert dropped.url == "https://h/a"
    assert dropped.sha256 is None


@pytest.mark.parametrize("scheme", ["HTTP", "Https"])
def test_scheme_case_insensitive(scheme: str) -> None:
    assert parse_payload_item(f"{scheme}://h/x").source is PayloadSource.EXTERNAL


def test_ipv6_host() -> None:
    item = parse_payload_item("http://[::1]:8080/fw.bin")
    assert item.host == "::1"
    assert item.filename == "fw.bin"


@pytest.mark.parametrize(
    ("raw", "filename"),
    [
        ("https://h/", "h"),
        ("https://files.example.com", "files.example.com"),
        ("https://h/a%20b.bin", "a b.bin"),
        ("https://h/..%2F..%2Fetc%2Fpasswd", "_.._etc_passwd"),
        ("https://h/%2e%2e", "h"),
        ("https://h/.env", "env"),
        ("https://h/a%5Cb%00c", "a_b_c"),
        ("https://h/d/a:b*c?.bin", "a_b_c"),
        ("https://[::1]/", "__1"),
        ("https://h/%ff%fe.bin", "\ufffd\ufffd.bin"),
    ],
)
def test_external_filename_is_sanitised(raw: str, filename: str) -> None:
    item = parse_payload_item(raw)
    assert item.filename == filename
    assert_safe_filename(item.filename)


def test_long_external_filename_keeps_extension() -> None:
    item = parse_payload_item("https://h/" + "x" * 400 + ".tar")
    assert item.filename.endswith(".tar")
    assert len(item.filename.encode()) == MAX_FILENAME_BYTES


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("ftp://x/y", 'is not an http(s) URL or a connector content id (scheme "ftp"'),
        ("file:///etc/passwd", 'scheme "file"'),
        ("javascript:alert(1)", 'scheme "javascript"'),
        ("data:text/plain,hi", 'scheme "data"'),
        ("fw:1.bin", 'scheme "fw"'),
        ("localhost:8080/x", 'scheme "localhost"'),
        ("https:///path", "no host"),
        ("http:host/x", "no host"),
        ("https://h/a b", "whitespace"),
        ("https://h/a\tb", "whitespace"),
        ("https://h/a\x7f", "control"),
        ("https://h\\@evil/x", "backslash"),
        ("https://h:99999/x", "invalid host or port"),
        ("https://h:port/x", "invalid host or port"),
        ("https://[zz::1]/x", "invalid host"),
        ("https://h%2f/x", "invalid host"),
        ("https://h/" + "a" * 8200, "longer than 8192"),
        ("https://h/x#sha256=1234", "not 64 hex digits (4 characters)"),
        ("https://h/x#sha256", "malformed sha256"),
        (f"https://h/x#sha256={HEX}&sha256={'0' * 64}", "two different sha256"),
    ],
)
def test_bad_urls_are_refused(raw: str, needle: str) -> None:
    with pytest.raises(PayloadItemError) as caught:
        parse_payload_item(raw)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        "https://alice:hunter2@host/x",
        "https://alice@host/x",
        "http://a:hunter2@b@host/x",
        "https://u:hunter2/x@host/x",
    ],
)
def test_credentials_are_refused_and_never_echoed(raw: str) -> None:
    with pytest.raises(PayloadItemError) as caught:
        parse_payload_item(raw)
    message = str(caught.value)
    assert "hunter2" not in message
    assert "alice" not in message


def test_query_is_hidden_in_messages_and_repr() -> None:
    with pytest.raises(PayloadItemError) as caught:
        parse_payload_item("https://h/x?X-Amz-Signature=topsecret#sha256=zz")
    assert "topsecret" not in str(caught.value)
    item = parse_payload_item("https://h/x?X-Amz-Signature=topsecret")
    assert "topsecret" not in repr(item)


def test_long_items_are_shortened_in_messages() -> None:
    with pytest.raises(PayloadItemError) as caught:
        parse_payload_item("ftp://" + "x" * 500)
    assert len(str(caught.value)) < 160
    assert "…" in str(caught.value)


def test_non_string_is_refused() -> None:
    with pytest.raises(PayloadItemError):
        parse_payload_item(3)  # type: ignore[arg-type]  # deliberately the wrong type


def test_item_is_frozen() -> None:
    item = parse_payload_item("fw.bin")
    with pytest.raises(AttributeError):
        item.filename = "x"  # type: ignore[misc]  # frozen dataclass


# ---------------------------------------------------------------------------------------------
# file name helpers


def test_fit_filename_inserts_suffix_before_extension() -> None:
    assert fit_filename("fw.bin", "-2") == "fw-2.bin"
    assert fit_filename("fw", "-2") == "fw-2"
    assert fit_filename("a" * 255 + ".bin", "-12").endswith("-12.bin")
    assert len(fit_filename("é" * 200, "-3").encode()) <= MAX_FILENAME_BYTES


# ---------------------------------------------------------------------------------------------
# properties

SEGMENT = st.text(min_size=0, max_size=300)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_an_item_or_a_one_line_refusal(raw: str) -> None:
    try:
        item = parse_payload_item(raw)
    except PayloadItemError as exc:
        assert "\n" not in str(exc)
        assert "\r" not in str(exc)
        return
    assert_safe_filename(item.filename)
    if item.source is PayloadSource.CONTENT:
        assert item.content_id is not None
        assert item.url is None
        for bad in ("/", "\\", "..", "\x00"):
            assert bad not in item.content_id
        assert all(ch.isprintable() or ch == " " for ch in item.content_id)
    else:
        assert item.url is not None
        assert "#" not in item.url
        assert item.content_id is None
        assert item.host


@settings(max_examples=300, deadline=None)
@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    path=st.lists(st.text(string.printable + "éü€", max_size=40), max_size=4),
    pin=st.none() | st.text("0123456789abcdefABCDEF", min_size=64, max_size=64),
)
def test_generated_urls_have_safe_names_and_keep_pins(
    host: str, path: list[str], pin: str | None
) -> None:
    from urllib.parse import quote

    url = f"https://{host}/" + "/".join(quote(p, safe="") for p in path)
    raw = url + (f"#sha256={pin}" if pin else "")
    item = parse_payload_item(raw)
    assert item.url == url
    assert item.host == host
    assert item.sha256 == (pin.lower() if pin else None)
    assert_safe_filename(item.filename)
    assert parse_payload_item(raw) == item  # deterministic


@settings(max_examples=300, deadline=None)
@given(SEGMENT)
def test_safe_filename_never_unsafe(text: str) -> None:
    name = safe_filename(text)
    if name:
        assert_safe_filename(name)
