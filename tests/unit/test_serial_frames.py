"""The serial link's control frames: encoding, decoding, validation with one-line errors."""

from __future__ import annotations

import json

import pytest

from otatui.links import serial_frames as sf
from otatui.otau.status import Status

SHA = "ab" * 32


def test_every_frame_round_trips_through_its_line() -> None:
    info = sf.FileInfo(name="fw 2.bin", size=3000, sha256=SHA)
    host_frames: list[sf.HostFrame] = [
        sf.HostHello(host="otatui 0.1.0"),
        sf.ManifestFrame(manifest='{"version":"2.1.0"}', files=(info,)),
        sf.Ping(seq=7),
        sf.Cancel(reason="cancelled by the technician"),
    ]
    for frame in host_frames:
        line = sf.encode(frame)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert sf.decode_from_host(line.rstrip(b"\n")) == frame
    device_frames: list[sf.DeviceFrame] = [
        sf.DeviceHello(identity="s1", version="1.0.0", files=(info,), max_frame=4096, time=1.5),
        sf.DeviceHello(identity="s1", version="1.0.0"),
        sf.Echo(manifest='{"version":"2.1.0"}'),
        sf.Send(files=("fw 2.bin",)),
        sf.Report(version="2.1.0", status=Status.INSTALL_STEP, message="flash", time=2.0),
        sf.Report(version="2.1.0", status=Status.INIT),
        sf.Log(message="hi"),
        sf.Pong(seq=7),
        sf.Busy(seconds=60, message="rebooting"),
        sf.Cancelled(aborted=True, message="stopped"),
        sf.ErrorFrame(message="unknown frame type 'x'"),
    ]
    for frame in device_frames:
        assert sf.decode_from_device(sf.encode(frame)) == frame


def test_encoding_is_compact_utf8_with_type_first() -> None:
    line = sf.encode(sf.Echo(manifest='{"name":"Zürich"}'))
    assert line == '{"type":"echo","manifest":"{\\"name\\":\\"Zürich\\"}"}\n'.encode()
    assert next(iter(json.loads(sf.encode(sf.Ping(seq=1))))) == "type"


def test_optional_fields_are_left_out_when_unset() -> None:
    data = json.loads(sf.encode(sf.Report(version="1", status=Status.TEST)))
    assert "time" not in data and data["message"] == ""
    hello = json.loads(sf.encode(sf.DeviceHello(identity="a", version="1")))
    assert "max_frame" not in hello and "time" not in hello and hello["files"] == []


def test_a_frame_longer_than_the_limit_is_refused() -> None:
    frame = sf.ManifestFrame(manifest="x" * 600, files=())
    with pytest.raises(sf.FrameError, match=r"manifest frame is \d+ bytes; at most 512 fit"):
        sf.encode(frame, limit=512)
    assert len(sf.encode(frame)) < sf.MAX_FRAME


def test_report_frame_gives_the_status_report() -> None:
    frame = sf.decode_from_device(
        b'{"type":"otau_in","version":"2.1.0","status":"DOWNLOAD","message":null,"time":17}'
    )
    assert isinstance(frame, sf.Report)
    assert frame.time == 17.0 and frame.message == ""
    assert frame.report.to_json() == '{"version":"2.1.0","status":"DOWNLOAD","message":""}'


def test_any_valid_json_is_accepted() -> None:
    line = b'  {"pong": 1, "seq" : 3, "type" : "pong", "extra": {"x": [1, 2]}}\r\n'
    text = sf.frame_text(line)
    assert text is not None
    assert sf.decode_from_device(text) == sf.Pong(seq=3)
    assert sf.decode_from_device(b'{"type":"log","message":"\\u00e9\\ud83d\\ude00"}') == sf.Log(
        message="é😀"
    )


def test_frame_text_skips_leading_garbage() -> None:
    assert sf.frame_text(b'C{"type":"pong","seq":1}\n') == b'{"type":"pong","seq":1}'
    assert sf.frame_text(b"booting v1.0\r\n") is None


def test_unknown_types_are_kept_as_unknown() -> None:
    assert sf.decode_from_device(b'{"type":"telemetry","t":1}') == sf.UnknownFrame("telemetry")
    assert sf.decode_from_host(b'{"type":"echo","manifest":""}') == sf.UnknownFrame("echo")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\xff{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1,2]", "an array, not a JSON object"),
        (b'{"seq":1}', "no string 'type'"),
        (b'{"type":""}', "no string 'type'"),
        (b'{"type":"pong","seq":1,"seq":2}', "the key 'seq' twice"),
        (b'{"type":"pong","seq":NaN}', "which JSON forbids"),
        (b'{"type":"pong","seq":-1}', "pong frame: 'seq' must be between 0 and"),
        (b'{"type":"pong","seq":"1"}', "pong frame: 'seq' must be an integer, not a string"),
        (b'{"type":"pong","seq":true}', "'seq' must be an integer, not a boolean"),
        (b'{"type":"hello","protocol":1,"version":"1"}', "'identity' must be a string, not null"),
        (b'{"type":"hello","protocol":1,"identity":" ","version":"1"}', "'identity' is empty"),
        (b'{"type":"hello","identity":"a","version":"1"}', "'protocol' must be an integer"),
        (
            b'{"type":"hello","protocol":1,"identity":"a","version":"1","max_frame":100}',
            "'max_frame' must be between 512 and 65536",
        ),
        (b'{"type":"otau_in","version":"1","status":"DONE"}', "not one of the 15 statuses"),
        (b'{"type":"otau_in","version":"1","status":"INIT","time":-5}', "'time' must be seconds"),
        (b'{"type":"otau_in","version":"1","status":"INIT","time":"x"}', "'time' must be a number"),
        (b'{"type":"send","files":"fw.bin"}', "'files' must be an array, not a string"),
        (b'{"type":"send","files":["../etc/passwd"]}', "empty or starts with a dot"),
        (b'{"type":"send","files":["etc/passwd"]}', "separator or control character"),
        (b'{"type":"send","files":["a\\\\b"]}', "separator or control character"),
        (b'{"type":"send","files":[".profile"]}', "empty or starts with a dot"),
        (b'{"type":"send","files":["a\\u0000b"]}', "separator or control character"),
        (b'{"type":"send","files":["a.bin","A.BIN"]}', "names 'a.bin' twice"),
        (b'{"type":"busy","seconds":601}', "'seconds' must be between 1 and 600"),
        (b'{"type":"cancelled","aborted":1}', "'aborted' must be true or false"),
        (b'{"type":"echo","manifest":"\\ud800"}', "lone surrogate"),
    ],
)
def test_invalid_device_frames_are_refused_with_one_line(line: bytes, reason: str) -> None:
    with pytest.raises(sf.FrameError) as caught:
        sf.decode_from_device(line)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message and len(message) < 200


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ('[{"name":"a","size":1}]', "'sha256' must be 64 lowercase hex digits"),
        (f'[{{"name":"a","size":1,"sha256":"{SHA.upper()}"}}]', "64 lowercase hex digits"),
        (f'[{{"name":"a","size":-1,"sha256":"{SHA}"}}]', "'size' must be between 0 and"),
        (f'[{{"name":"a","size":1.5,"sha256":"{SHA}"}}]', "'size' must be an integer"),
        (f'[{{"size":1,"sha256":"{SHA}"}}]', "the name must be a string, not null"),
        ("[7]", "file 1 must be an object, not a number"),
        (f'[{{"name":"{"x" * 256}","size":1,"sha256":"{SHA}"}}]', "longer than 255 bytes"),
        ("[" + ",".join(["7"] * 101) + "]", "more than 100 entries"),
    ],
)
def test_invalid_file_lists_are_refused(files: str, reason: str) -> None:
    line = f'{{"type":"manifest","manifest":"{{}}","files":{files}}}'.encode()
    with pytest.raises(sf.FrameError, match="manifest frame") as caught:
        sf.decode_from_host(line)
    assert reason in str(caught.value)


def test_whole_number_floats_are_integers_and_messages_are_cut() -> None:
    frame = sf.decode_from_device(b'{"type":"pong","seq":3.0}')
    assert frame == sf.Pong(seq=3)
    long = json.dumps({"type": "log", "message": "x" * 5000}).encode()
    log = sf.decode_from_device(long)
    assert isinstance(log, sf.Log) and len(log.message) == sf.MAX_MESSAGE


def test_an_over_long_line_is_refused() -> None:
    line = json.dumps({"type": "log", "message": "x" * sf.MAX_FRAME}).encode()
    with pytest.raises(sf.FrameError, match="longer than 65536"):
        sf.decode_from_device(line)


def test_the_device_hello_may_omit_files() -> None:
    frame = sf.decode_from_device(b'{"type":"hello","protocol":2,"identity":"a","version":"1"}')
    assert frame == sf.DeviceHello(identity="a", version="1", protocol=2)
