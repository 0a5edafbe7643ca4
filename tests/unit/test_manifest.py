"""The config_otau manifest: every rule, every error kind, raw retention, properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otatui.otau import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    ManifestErrorKind,
    ManifestType,
    PayloadSource,
    parse_manifest,
)

K = ManifestErrorKind
HEX = "ab" * 32

# The two examples of the OTA guide (ota-guide.txt), verbatim, plus the schema's own.
GUIDE_CONTENT_EXAMPLE = """{
"version": "1.0.2",
"name": "Firmware update",
"description": "firmware package updated",
"type": "URL_LIST",
"payload": [
"firmware_updatev102.txt"
]
}"""
GUIDE_LINKS_EXAMPLE = """{
"version": "08-14-2021",
"name": "Update Device Packages 08-14-2021",
"description": "",
"type": "URL_LIST",
"payload": [
"https://mycontentserver.com/file1",
"https://mycontentserver.com/file2"
]
}"""
GUIDE_MANIFEST_EXAMPLE = """{
"version": "1.2.0",
"name": "Firmware upgrade",
"description": "Updates to main application and protocol handlers",
"type": "URL_LIST",
"payload": [
"http://example.com/file1",
"http://example.com/file2",
"http://example.com/file3"
]
}"""


def manifest_text(**fields: Any) -> str:
    base: dict[str, Any] = {"version": "1.0", "name": "fw", "type": "FILE", "payload": "fw.bin"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}, ensure_ascii=False)


def ok(raw: str | bytes) -> Manifest:
    result = parse_manifest(raw)
    assert isinstance(result, Manifest), result
    return result


def err(raw: str | bytes) -> ManifestError:
    result = parse_manifest(raw)
    assert isinstance(result, ManifestError), result
    assert "\n" not in result.reason
    assert len(result.reason) <= 200
    return result


# ---------------------------------------------------------------------------------------------
# the guide's examples


def test_guide_example_with_connector_content() -> None:
    m = ok(GUIDE_CONTENT_EXAMPLE)
    assert (m.version, m.name, m.type) == ("1.0.2", "Firmware update", ManifestType.URL_LIST)
    assert m.description == "firmware package updated"
    [item] = m.items
    assert item.source is PayloadSource.CONTENT
    assert item.content_id == "firmware_updatev102.txt"
    assert item.filename == "firmware_updatev102.txt"
    assert m.needs_download
    assert m.raw == GUIDE_CONTENT_EXAMPLE


def test_guide_example_with_links() -> None:
    m = ok(GUIDE_LINKS_EXAMPLE)
    assert m.version == "08-14-2021"
    assert m.description == ""
    assert [i.source for i in m.items] == [PayloadSource.EXTERNAL] * 2
    assert [i.url for i in m.items] == [
        "https://mycontentserver.com/file1",
        "https://mycontentserver.com/file2",
    ]
    assert [i.filename for i in m.items] == ["file1", "file2"]
    assert {i.host for i in m.items} == {"mycontentserver.com"}


def test_guide_manifest_example() -> None:
    m = ok(GUIDE_MANIFEST_EXAMPLE)
    assert len(m.items) == 3
    assert [i.filename for i in m.items] == ["file1", "file2", "file3"]


def test_guide_graphql_embedded_manifest() -> None:
    tag = json.loads(
        '{"author":"user@example.com","product":"myconnector","config_otau":{"version":"1.0.1",'
        '"name":"firmware update","description":"firmware update","type":"URL_LIST",'
        '"payload":["firmware_updatev101.txt"]}}'
    )
    m = ok(json.dumps(tag["config_otau"]))
    assert m.items[0].content_id == "firmware_updatev101.txt"


# ---------------------------------------------------------------------------------------------
# types


def test_file_type_has_one_item() -> None:
    m = ok(manifest_text(type="FILE", payload=f"https://www.example.com/otau.exe#sha256={HEX}"))
    [item] = m.items
    assert item.url == "https://www.example.com/otau.exe"
    assert item.sha256 == HEX
    assert m.needs_download


def test_json_type_has_no_items() -> None:
    m = ok(manifest_text(type="JSON", payload={"setting": [1, 2, {"x": None}]}))
    assert m.items == ()
    assert not m.needs_download
    assert m.payload == {"setting": [1, 2, {"x": None}]}


def test_description_null_is_empty_and_optional() -> None:
    assert ok(manifest_text(description=None)).description == ""
    assert ok(manifest_text()).description == ""


def test_version_and_name_are_kept_exactly() -> None:
    m = ok(manifest_text(version=" 2.0 ", name="Security\tUpdate"))
    assert m.version == " 2.0 "
    assert m.name == "Security\tUpdate"


# ---------------------------------------------------------------------------------------------
# raw retention and extra keys


@pytest.mark.parametrize(
    "raw",
    [
        '  {"payload":"fw.bin" ,\n\t"type":"FILE","name":"n","version":"1"}  \r\n',
        '{"version":"\\u0031.\\u0030","name":"\\u00e9t\\u00e9","type":"FILE","payload":"fw.bin"}',
        '{"version":"1","name":"🚀 ünïcödé","type":"FILE","payload":"fw.bin","z":1.50}',
        '\ufeff{"version":"1","name":"bom","type":"FILE","payload":"fw.bin"}',
    ],
)
def test_raw_is_kept_byte_identical(raw: str) -> None:
    m = ok(raw)
    assert m.raw == raw
    assert ok(raw.encode("utf-8")).raw.encode("utf-8") == raw.encode("utf-8")


def test_unicode_escapes_are_decoded_in_fields_but_kept_in_raw() -> None:
    m = ok('{"version":"\\u0031","name":"n","type":"FILE","payload":"fw.bin"}')
    assert m.version == "1"
    assert "\\u0031" in m.raw


def test_extra_keys_are_kept() -> None:
    raw = manifest_text(vendor="acme", size=12, nested={"a": [1]}, raw="x", items=[], _private=1)
    m = ok(raw)
    assert m.extra == {
        "vendor": "acme",
        "size": 12,
        "nested": {"a": [1]},
        "raw": "x",
        "items": [],
        "_private": 1,
    }
    assert m.raw == raw  # the "raw" extra key does not shadow the property
    assert m.model_dump(mode="json") == {**json.loads(raw), "description": ""}


def test_manifest_is_frozen() -> None:
    m = ok(manifest_text())
    with pytest.raises(Exception, match="frozen"):
        m.version = "2"  # type: ignore[misc]  # frozen model, deliberately assigned


def test_repr_hides_payload_urls() -> None:
    m = ok(manifest_text(payload="https://h/x?sig=topsecret"))
    assert "topsecret" not in repr(m)
    assert "topsecret" not in str(m)


def test_directly_built_manifest_is_validated_and_has_a_raw() -> None:
    m = Manifest(version="1", name="n", type=ManifestType.FILE, payload="fw.bin")
    assert m.items[0].content_id == "fw.bin"
    assert json.loads(m.raw)["payload"] == "fw.bin"
    with pytest.raises(ValueError, match="content id"):
        Manifest(version="1", name="n", type=ManifestType.FILE, payload="a/b")


# ---------------------------------------------------------------------------------------------
# filenames unique within a manifest


def test_duplicate_filenames_get_suffixes() -> None:
    m = ok(
        manifest_text(
            type="URL_LIST",
            payload=[
                "https://a.example/fw.bin",
                "https://b.example/fw.bin",
                "fw-2.bin",
                "FW.BIN",
                "https://a.example/fw.bin",
            ],
        )
    )
    names = [i.filename for i in m.items]
    assert names == ["fw.bin", "fw-3.bin", "fw-2.bin", "FW-4.BIN", "fw-5.bin"]
    assert m.items[3].content_id == "FW.BIN"  # the id is untouched, only the local name changes
    assert len({n.casefold() for n in names}) == len(names)


def test_many_duplicate_filenames_stay_fast() -> None:
    import time

    raw = manifest_text(type="URL_LIST", payload=["https://h/fw.bin"] * 20_000)
    started = time.perf_counter()
    m = ok(raw)
    elapsed = time.perf_counter() - started
    assert m.items[-1].filename == "fw-20000.bin"
    assert len({i.filename for i in m.items}) == 20_000
    assert elapsed < 5  # linear: about 0.2 s here; quadratic took minutes


# ---------------------------------------------------------------------------------------------
# every error kind


@pytest.mark.parametrize(
    ("raw", "kind", "needle", "version"),
    [
        ("", K.NOT_JSON, "manifest is not JSON", None),
        ("{", K.NOT_JSON, "line 1 column 2", None),
        ("not json", K.NOT_JSON, "manifest is not JSON", None),
        ("[1, 2]", K.NOT_OBJECT, "not an array", None),
        ('"x"', K.NOT_OBJECT, "not a string", None),
        ("null", K.NOT_OBJECT, "not null", None),
        (manifest_text(version=...), K.MISSING_FIELD, 'manifest has no "version"', None),
        (manifest_text(name=...), K.MISSING_FIELD, 'manifest has no "name"', "1.0"),
        (manifest_text(type=...), K.MISSING_FIELD, 'manifest has no "type"', "1.0"),
        (manifest_text(payload=...), K.MISSING_FIELD, 'manifest has no "payload"', "1.0"),
        (manifest_text(version=""), K.EMPTY_FIELD, '"version" is empty', ""),
        (manifest_text(name=" \t"), K.EMPTY_FIELD, '"name" is empty', "1.0"),
        (
            manifest_text(version=1.0),
            K.WRONG_TYPE,
            '"version" must be a string, not a number',
            None,
        ),
        (manifest_text(name=None), K.WRONG_TYPE, '"name" must be a string, not null', "1.0"),
        (manifest_text(description=3), K.WRONG_TYPE, '"description" must be a string', "1.0"),
        (
            manifest_text(type=["FILE"]),
            K.WRONG_TYPE,
            '"type" must be a string, not an array',
            "1.0",
        ),
        (manifest_text(type="file"), K.UNKNOWN_TYPE, '"type" "file" is not one of FILE', "1.0"),
        (manifest_text(type="ZIP"), K.UNKNOWN_TYPE, "FILE, JSON, URL_LIST", "1.0"),
        (manifest_text(payload=["a"]), K.BAD_PAYLOAD, 'FILE "payload" must be one string', "1.0"),
        (manifest_text(payload=None), K.BAD_PAYLOAD, "not null", "1.0"),
        (
            manifest_text(type="URL_LIST", payload="a"),
            K.BAD_PAYLOAD,
            'URL_LIST "payload" must be an array of strings, not a string',
            "1.0",
        ),
        (manifest_text(type="URL_LIST", payload=[]), K.BAD_PAYLOAD, "empty array", "1.0"),
        (
            manifest_text(type="URL_LIST", payload=["a", {"u": 1}]),
            K.BAD_PAYLOAD,
            "payload item 2 is an object, not a string",
            "1.0",
        ),
        (manifest_text(type="JSON", payload=[1]), K.BAD_PAYLOAD, "must be an object", "1.0"),
        (
            manifest_text(type="URL_LIST", payload=["fw.bin", "ftp://x/y"]),
            K.BAD_ITEM,
            'payload item 2 "ftp://x/y" is not an http(s) URL or a connector content id',
            "1.0",
        ),
        (
            manifest_text(payload="example.com/file"),
            K.BAD_ITEM,
            "payload \"example.com/file\" is not a valid item: a content id has no '/'",
            "1.0",
        ),
        (manifest_text(payload="../etc/passwd"), K.BAD_ITEM, "a content id has no '/'", "1.0"),
        (manifest_text(payload="fw..bin"), K.BAD_ITEM, "'..'", "1.0"),
        (
            '{"version":"1","name":"n","name":"m","type":"FILE","payload":"x"}',
            K.DUPLICATE_KEY,
            'duplicate key "name" in the manifest',
            "1",
        ),
        (
            '{"version":"1","version":"1","name":"n","type":"FILE","payload":"x"}',
            K.DUPLICATE_KEY,
            'duplicate key "version"',
            None,
        ),
        (
            '{"version":"1","name":"n","type":"JSON","payload":{"a":1,"a":2}}',
            K.DUPLICATE_KEY,
            'duplicate key "a" inside the manifest',
            "1",
        ),
        (
            '{"version":"1","name":"n","type":"JSON","payload":{"a":NaN}}',
            K.NOT_JSON,
            'number "NaN" is not finite',
            "1",
        ),
        (
            '{"version":"1","name":"n","type":"JSON","payload":{"a":-Infinity}}',
            K.NOT_JSON,
            "is not finite",
            "1",
        ),
        (
            '{"version":"1","name":"n","type":"JSON","payload":{"a":1e999}}',
            K.NOT_JSON,
            'number "1e999" is not finite',
            "1",
        ),
        (
            '{"version":"1","name":"n","type":"JSON","payload":{"a":"\\udc00"}}',
            K.NOT_UTF8,
            "lone surrogate",
            "1",
        ),
        (
            '{"version":"\\ud800","name":"n","type":"JSON","payload":{}}',
            K.NOT_UTF8,
            "lone surrogate",
            None,
        ),
        ("[" * 200_000, K.NOT_JSON, "nested too deeply", None),
        ('{"version":"1","n":' + "9" * 5000 + "}", K.NOT_JSON, "not usable JSON", None),
    ],
)
def test_error_kinds(raw: str, kind: ManifestErrorKind, needle: str, version: str | None) -> None:
    e = err(raw)
    assert e.kind is kind
    assert needle in e.reason
    assert e.version == version
    assert e.raw == raw


def test_first_bad_field_in_schema_order_is_reported() -> None:
    e = err('{"payload":3,"type":"ZIP","name":"","version":"7"}')
    assert e.kind is K.EMPTY_FIELD
    assert e.reason == '"name" is empty'
    assert e.version == "7"


def test_not_utf8_bytes() -> None:
    raw = b'{"version":"1\xff","name":"n"}'
    e = err(raw)
    assert e.kind is K.NOT_UTF8
    assert "offset 13" in e.reason
    assert e.raw == raw.decode("utf-8", "replace")
    assert e.version is None


def test_lone_surrogate_in_text() -> None:
    e = err('{"version":"1\ud800"}')
    assert e.kind is K.NOT_UTF8
    assert "\ufffd" in e.raw or "?" in e.raw


def test_too_large_bytes_and_text() -> None:
    pad = "x" * MAX_MANIFEST_BYTES
    big = manifest_text(description=pad)
    assert err(big).kind is K.TOO_LARGE
    assert err(big.encode()).kind is K.TOO_LARGE
    assert str(MAX_MANIFEST_BYTES) in err(big).reason


def test_size_counts_utf8_bytes_not_characters() -> None:
    body = manifest_text(description="")
    room = MAX_MANIFEST_BYTES - len(body.encode())
    fits = manifest_text(description="a" * room)
    assert ok(fits).raw == fits
    # 'é' is 2 bytes: half as many characters go past the limit
    over = manifest_text(description="é" * (room // 2 + 1))
    assert len(over) <= MAX_MANIFEST_BYTES
    assert err(over).kind is K.TOO_LARGE


def test_credentials_never_echoed() -> None:
    e = err(manifest_text(type="URL_LIST", payload=["https://bob:s3cr3t@h/x"]))
    assert e.kind is K.BAD_ITEM
    assert "s3cr3t" not in e.reason
    assert "bob" not in e.reason
    assert e.reason.startswith('payload item 1 "https://***@h/x"')


def test_long_item_is_truncated_in_reason() -> None:
    e = err(manifest_text(type="URL_LIST", payload=["ftp://" + "y" * 1000]))
    assert "…" in e.reason
    assert len(e.reason) <= 200


def test_control_characters_in_values_do_not_break_the_line() -> None:
    e = err(manifest_text(type="line1\nline2\u2028x"))
    assert e.kind is K.UNKNOWN_TYPE
    assert "\n" not in e.reason
    assert "\u2028" not in e.reason
    assert "\\n" in e.reason


def test_wrong_python_type_does_not_raise() -> None:
    e = parse_manifest(12)  # type: ignore[arg-type]  # deliberately wrong
    assert isinstance(e, ManifestError)
    assert e.kind is K.NOT_JSON


# ---------------------------------------------------------------------------------------------
# properties

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSONISH = st.recursive(
    JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD_VALUES = JSONISH | st.sampled_from(["FILE", "JSON", "URL_LIST", "", " ", "1.0", "fw.bin"])


def check_result(result: Manifest | ManifestError) -> None:
    if isinstance(result, ManifestError):
        assert result.kind is not K.INTERNAL, result.reason
        assert "\n" not in result.reason
        assert "\r" not in result.reason
        assert all(ch.isprintable() for ch in result.reason)
        assert 0 < len(result.reason) <= 200
        result.raw.encode("utf-8")  # storable and displayable
    else:
        names = [i.filename for i in result.items]
        assert len({n.casefold() for n in names}) == len(names)
        for name in names:
            assert name
            assert "/" not in name
            assert "\\" not in name
            assert not name.startswith(".")
            assert len(name.encode()) <= 255


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_text(raw: str) -> None:
    check_result(parse_manifest(raw))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_never_raises_on_bytes(raw: bytes) -> None:
    check_result(parse_manifest(raw))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["version", "name", "description", "type", "payload"])
        | st.text(max_size=6),
        FIELD_VALUES,
        max_size=7,
    )
    | JSONISH
)
def test_never_raises_on_jsonish_values(value: Any) -> None:
    raw = json.dumps(value)
    result = parse_manifest(raw)
    check_result(result)
    if isinstance(value, dict) and isinstance(value.get("version"), str):
        assert isinstance(result, Manifest) or result.version == value["version"]


ITEMS = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,30}[A-Za-z0-9_]", fullmatch=True).filter(
        lambda s: ".." not in s and ":" not in s
    ),
    st.builds(
        lambda host, name, pin: f"https://{host}/d/{name}" + (f"#sha256={pin}" if pin else ""),
        st.sampled_from(["a.example", "b.example", "127.0.0.1:8080", "[::1]"]),
        st.from_regex(r"[A-Za-z0-9%._-]{0,20}", fullmatch=True),
        st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    ),
)
NON_BLANK = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")


@st.composite
def valid_manifests(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(ManifestType)))
    payload: Any
    if kind is ManifestType.FILE:
        payload = draw(ITEMS)
    elif kind is ManifestType.URL_LIST:
        payload = draw(st.lists(ITEMS, min_size=1, max_size=8))
    else:
        payload = draw(st.dictionaries(st.text(max_size=8), JSONISH, max_size=4))
    value: dict[str, Any] = {
        "version": draw(NON_BLANK),
        "name": draw(NON_BLANK),
        "type": kind.value,
        "payload": payload,
    }
    if draw(st.booleans()):
        value["description"] = draw(st.text(max_size=30))
    extra = draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in value and k != "description"),
            JSONISH,
            max_size=3,
        )
    )
    value.update(extra)
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_manifests(), st.booleans(), st.integers(min_value=0, max_value=3))
def test_valid_manifests_round_trip(value: dict[str, Any], ascii_only: bool, indent: int) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only, indent=indent or None)
    m = parse_manifest(raw)
    assert isinstance(m, Manifest), m
    check_result(m)
    assert m.raw == raw
    assert m.version == value["version"]
    assert m.name == value["name"]
    assert m.description == value.get("description", "")
    assert m.type.value == value["type"]
    assert json.loads(json.dumps(m.model_dump(mode="json"))) == json.loads(
        json.dumps({**value, "description": value.get("description", "")})
    )
    expected = {"FILE": 1, "JSON": 0}.get(value["type"], len(value["payload"]))
    assert len(m.items) == expected
    assert m.needs_download == (expected > 0)
    assert m.extra == {k: v for k, v in value.items() if k not in Manifest.model_fields}
    # Deterministic: the same text always gives the same file names.
    again = parse_manifest(raw)
    assert isinstance(again, Manifest)
    assert [i.filename for i in again.items] == [i.filename for i in m.items]
