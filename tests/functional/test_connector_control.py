"""The connector's loopback control endpoint (the application side over HTTP) and serve_forever."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, quote

import httpx
import pytest
from connector_helpers import PahoDevice

from otatui.connector import Connector, serve_forever

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
AUTH = {"X-Exosite-CIK": TOKEN}
MANIFEST = '{"version":"2.0.0","name":"fw","type":"FILE","payload":"fw.bin"}'


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(devices=[("dev1", TOKEN)], control_port=0) as c:
        yield c


@pytest.fixture
async def control(connector: Connector) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=connector.control_url, timeout=10) as c:
        yield c


@pytest.fixture
async def device(connector: Connector) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=connector.http_url, timeout=10) as c:
        yield c


async def test_health_lists_the_listeners(control: httpx.AsyncClient, connector: Connector):
    doc = (await control.get("/health")).json()
    assert doc["http_url"] == connector.http_url
    assert doc["mqtt_url"] == connector.mqtt_url
    assert doc["control_url"] == connector.control_url


async def test_set_config_otau_and_read_the_ack(
    control: httpx.AsyncClient, device: httpx.AsyncClient
):
    r = await control.put("/devices/dev1/resources/config_otau", content=MANIFEST.encode())
    assert r.status_code == 200 and r.json()["set_value"] == MANIFEST
    poll = await device.get(
        "/onep:v1/stack/alias?config_otau", headers={**AUTH, "Request-Timeout": "1000"}
    )
    value = dict(parse_qsl(poll.text))["config_otau"]
    assert value == MANIFEST
    await device.post("/onep:v1/stack/alias", data={"config_otau": value}, headers=AUTH)
    state = (await control.get("/devices/dev1/resources/config_otau")).json()
    assert state["acked"] and state["reported"] == MANIFEST
    assert (await control.get("/devices/dev1/resources/nothing")).status_code == 404


async def test_reports_with_wait_and_after(control: httpx.AsyncClient, device: httpx.AsyncClient):
    waiting = asyncio.create_task(control.get("/devices/dev1/reports?alias=otau_in&wait=5"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await device.post("/onep:v1/stack/alias", data={"data_in": "1"}, headers=AUTH)
    await device.post("/onep:v1/stack/alias", data={"otau_in": '{"status":"INIT"}'}, headers=AUTH)
    got = (await waiting).json()
    assert [(r["index"], r["alias"], r["value"], r["via"]) for r in got] == [
        (1, "otau_in", '{"status":"INIT"}', "http")
    ]
    everything = (await control.get("/devices/dev1/reports")).json()
    assert [r["alias"] for r in everything] == ["data_in", "otau_in"]
    later = (await control.get("/devices/dev1/reports?after=2&wait=0.2")).json()
    assert later == []


async def test_devices_whitelist_provision_reset_delete(
    control: httpx.AsyncClient, device: httpx.AsyncClient
):
    r = await control.post("/devices", json={"identity": "new-1"})
    assert r.status_code == 201 and r.json()["provisioned"] is False
    assert (await device.post("/provision/activate", data={"id": "new-1"})).status_code == 200
    listing = {d["identity"]: d for d in (await control.get("/devices")).json()}
    assert listing["new-1"]["provisioned"] and "token" not in json.dumps(listing)
    assert (await control.post("/devices/new-1/reset")).status_code == 204
    assert (await device.post("/provision/activate", data={"id": "new-1"})).status_code == 200
    assert (await control.delete("/devices/new-1")).status_code == 204
    assert (await device.post("/provision/activate", data={"id": "new-1"})).status_code == 404
    assert (await control.delete("/devices/new-1")).status_code == 404
    assert (await control.post("/devices", json={"identity": 5})).status_code == 400
    r = await control.post("/devices", json={"identity": "pre", "token": "p" * 40})
    assert r.status_code == 201 and r.json()["provisioned"]


async def test_content_upload_list_delete(
    control: httpx.AsyncClient, device: httpx.AsyncClient, tmp_path: Path
):
    r = await control.put(
        f"/content/{quote('fw 1.bin', safe='')}?type=application/x-fw&description=Fw",
        content=b"\x00\x01firmware",
    )
    assert r.status_code == 201 and r.json()["size"] == 10
    local = tmp_path / "big.bin"
    local.write_bytes(b"z" * 5000)
    r = await control.put(f"/content/big?path={quote(str(local))}&copy=false")
    assert r.status_code == 201
    listing = {c["id"]: c for c in (await control.get("/content")).json()}
    assert listing["fw 1.bin"]["content_type"] == "application/x-fw"
    assert listing["big"]["size"] == 5000
    got = await device.get("/provision/download", params={"id": "fw 1.bin"}, headers=AUTH)
    assert got.content == b"\x00\x01firmware"
    assert (await control.delete("/content/big")).status_code == 204
    assert local.exists()  # served in place, so not deleted
    assert (await control.delete("/content/big")).status_code == 404
    missing = await control.put(f"/content/x?path={quote(str(tmp_path / 'none'))}")
    assert missing.status_code == 400


async def test_faults_over_control(control: httpx.AsyncClient, device: httpx.AsyncClient):
    r = await control.post("/faults", json={"fail_next": 1, "status": 502})
    assert r.status_code == 200 and r.json()["fail_count"] == 1
    assert (await device.get("/timestamp")).status_code == 502
    assert (await device.get("/timestamp")).status_code == 200
    await control.post("/faults", json={"fail_next": 3})
    assert (await control.delete("/faults")).status_code == 204
    assert (await device.get("/timestamp")).status_code == 200


async def test_kick_over_control(control: httpx.AsyncClient, connector: Connector):
    paho = PahoDevice(connector.ports["mqtt"], TOKEN)
    assert await paho.start() == 0
    try:
        listing = (await control.get("/devices")).json()
        assert listing[0]["connected"] is True
        assert (await control.post("/devices/dev1/kick")).json() == {"closed": 1}
        await paho.next(paho.disconnects)
    finally:
        await paho.stop()


async def test_unknown_route_and_bad_json(control: httpx.AsyncClient):
    assert (await control.get("/nope")).status_code == 404
    assert (await control.post("/devices", content=b"{")).status_code == 400
    assert (await control.get("/devices/ghost/reports")).status_code == 404


def test_control_refuses_a_non_loopback_address():
    with pytest.raises(ValueError, match="loopback"):
        Connector(control_port=0, control_host="0.0.0.0")


async def test_serve_forever_runs_until_cancelled(tmp_path: Path):
    started: asyncio.Future[Connector] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_forever(
            http_port=0,
            mqtt_port=0,
            control_port=0,
            data_dir=tmp_path,
            devices=[("dev1", TOKEN)],
            ready=started.set_result,
        )
    )
    connector = await asyncio.wait_for(started, 5)
    async with httpx.AsyncClient(base_url=connector.http_url) as client:
        r = await client.post("/onep:v1/stack/alias", data={"otau_in": "up"}, headers=AUTH)
        assert r.status_code == 204
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (tmp_path / "state" / "reports.jsonl").read_text().count('"up"') == 1
