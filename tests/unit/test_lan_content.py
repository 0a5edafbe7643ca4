"""The LAN push's content ids and rewritten manifests (pure parts of `otatui.links.lan_content`)."""

from __future__ import annotations

import hashlib
import json

import pytest

from otatui.links.lan_content import LanError, PushedFile, content_id_for, rewrite_manifest
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.payload import PayloadSource, parse_payload_item

SHA = hashlib.sha256(b"firmware").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


def manifest(data: dict[str, object]) -> Manifest:
    parsed = parse_manifest(json.dumps(data))
    assert isinstance(parsed, Manifest), parsed
    return parsed


def test_content_id_keeps_the_name_and_extension_and_adds_the_sha() -> None:
    assert content_id_for("fw_2.0.0.bin", SHA) == f"fw_2.0.0-{SHA[:16]}.bin"
    assert content_id_for("README", SHA) == f"README-{SHA[:16]}"


def test_content_id_is_deterministic_and_differs_with_the_bytes() -> None:
    assert content_id_for("fw.bin", SHA) == content_id_for("fw.bin", SHA)
    assert content_id_for("fw.bin", SHA) != content_id_for("fw.bin", OTHER)
    assert content_id_for("fw.bin", SHA) != content_id_for("fx.bin", SHA)


@pytest.mark.parametrize(
    "name",
    [
        "a..b.bin",
        "..hidden",
        "...",
        "",
        "fw 1.0.bin",
        "ünïcödé.bin",
        "x" * 400 + ".bin",
        "é" * 200,
        "http:evil.bin",
        "a#b.bin",
        "tab\there",
    ],
)
def test_content_id_is_always_a_valid_content_item(name: str) -> None:
    cid = content_id_for(name, SHA)
    item = parse_payload_item(f"{cid}#sha256={SHA}")
    assert item.source is PayloadSource.CONTENT
    assert item.content_id == cid
    assert item.sha256 == SHA
    assert len(cid.encode()) <= 255


def test_pushed_file_payload_item_is_a_pinned_content_id() -> None:
    pushed = PushedFile("fw.bin", content_id_for("fw.bin", SHA), SHA, 8)
    item = parse_payload_item(pushed.payload_item)
    assert (item.content_id, item.sha256) == (pushed.content_id, SHA)


def test_rewrite_url_list_points_every_item_at_local_content_and_keeps_other_keys() -> None:
    original = manifest(
        {
            "version": "2.0.0",
            "name": "Firmware",
            "description": "big one",
            "type": "URL_LIST",
            "payload": ["fw.bin", f"https://files.example.com/extra.tar?sig=secret#sha256={SHA}"],
            "vendor_key": {"nested": [1, 2]},
        }
    )
    items = [f"fw-{SHA[:16]}.bin#sha256={SHA}", f"extra-{OTHER[:16]}.tar#sha256={OTHER}"]
    text = rewrite_manifest(original, items)
    data = json.loads(text)
    assert list(data) == ["version", "name", "description", "type", "payload", "vendor_key"]
    assert data["payload"] == items
    assert data["vendor_key"] == {"nested": [1, 2]}
    parsed = parse_manifest(text)
    assert isinstance(parsed, Manifest)
    assert parsed.version == "2.0.0"
    assert all(i.source is PayloadSource.CONTENT and i.pinned for i in parsed.items)
    assert "example.com" not in text and "secret" not in text


def test_rewrite_file_manifest_keeps_one_string() -> None:
    original = manifest(
        {"version": "3", "name": "n", "type": "FILE", "payload": "https://h.example/fw.bin"}
    )
    text = rewrite_manifest(original, [f"fw-{SHA[:16]}.bin#sha256={SHA}"])
    assert json.loads(text)["payload"] == f"fw-{SHA[:16]}.bin#sha256={SHA}"


def test_rewrite_json_manifest_is_byte_for_byte() -> None:
    raw = '{"version": "4",  "name": "cfg", "type": "JSON", "payload": {"a": 1}}'
    original = parse_manifest(raw)
    assert isinstance(original, Manifest)
    assert rewrite_manifest(original, []) == raw


def test_rewrite_refuses_a_wrong_number_of_items() -> None:
    original = manifest({"version": "2", "name": "n", "type": "URL_LIST", "payload": ["a", "b"]})
    with pytest.raises(LanError, match="1 item"):
        rewrite_manifest(original, [f"a#sha256={SHA}"])
