"""docs/serial-link.md stays true: its example frames are valid frames of this otatui, and the
CRC it documents is the one YMODEM uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

from otatui.links import serial_frames as sf
from otatui.links.ymodem_wire import packet
from otatui.otau.status import Status

DOC = Path(__file__).resolve().parents[2] / "docs" / "serial-link.md"
HEX = "ab" * 32


def _frames(arrow: str) -> list[str]:
    lines = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{arrow} {{") and "..." not in line:
            lines.append(line[2:].replace("<64 hex>", HEX))
    return lines


def test_every_example_frame_of_the_transcripts_is_valid() -> None:
    down, up = _frames("→"), _frames("←")
    assert len(down) >= 4 and len(up) >= 15
    for line in down:
        frame = sf.decode_from_host(line.encode())
        assert not isinstance(frame, sf.UnknownFrame), line
        assert json.loads(sf.encode(frame)) == json.loads(line)  # what we would send
    for line in up:
        assert not isinstance(sf.decode_from_device(line.encode()), sf.UnknownFrame), line


def test_the_json_blocks_are_valid_frames() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)\n```", text, re.S)
    assert len(blocks) >= 6
    for block in blocks:
        line = re.sub(r'"[0-9a-f]{4}…\(64 hex\)"', f'"{HEX}"', block).encode()
        kind = json.loads(line)["type"]
        decode = sf.decode_from_host if kind in ("manifest", "ping", "cancel") else None
        if kind == "hello":
            decode = (
                sf.decode_from_device if "identity" in json.loads(line) else sf.decode_from_host
            )
        frame = (decode or sf.decode_from_device)(line)
        assert not isinstance(frame, sf.UnknownFrame), block


def test_the_doc_lists_the_15_statuses() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## 6. The statuses") : text.index("## 7.")]
    listed = re.findall(r"^\| `([A-Z_]+)` \|", section, re.M)
    assert listed == [s.value for s in Status]


def _doc_crc(data: bytes) -> int:
    """The C function of the doc, line for line."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_the_documented_crc_is_the_one_of_the_blocks() -> None:
    assert '`"123456789"` gives 0x31C3' in DOC.read_text(encoding="utf-8")
    assert _doc_crc(b"123456789") == 0x31C3
    data = bytes(range(256)) * 4
    block = packet(1, data, 1024, True)
    assert block[:3] == b"\x02\x01\xfe"
    assert int.from_bytes(block[-2:], "big") == _doc_crc(data)
