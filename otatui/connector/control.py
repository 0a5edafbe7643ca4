"""The application side over HTTP: a small JSON control endpoint, bound to loopback only.

For demos, scripts and tests in another process. Path segments are percent-encoded; resource
values and uploaded content travel as raw request bodies (byte for byte), everything else as JSON.
Tokens are never returned.

=======  =========================================  ============================================
Method   Path                                       Effect
=======  =========================================  ============================================
GET      /health                                    listener URLs
GET      /devices                                   devices, provisioned?, connected?, resources
POST     /devices                                   ``{"identity", "token"?}``: whitelist/provision
DELETE   /devices/<identity>                        forget the device
POST     /devices/<identity>/reset                  forget its token (must activate again)
POST     /devices/<identity>/kick                   close its MQTT connection
PUT      /devices/<identity>/resources/<alias>      body = the value to set (e.g. config_otau)
GET      /devices/<identity>/resources/<alias>      set value, reported value, acknowledged?
GET      /devices/<identity>/reports                ``?alias=&after=N&wait=S``: device writes
GET      /content                                   content items
PUT      /content/<id>                              body = bytes, or ``?path=`` a local file;
                                                    ``?type=&description=&copy=false``
DELETE   /content/<id>                              remove it
POST     /faults                                    ``{"fail_next", "status", "path", "delay_s",
                                                    "drop_after_bytes", "drop_count"}``
DELETE   /faults                                    clear all faults
=======  =========================================  ============================================
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from .application import Application
from .http_server import Exchange, Request, Response
from .state import Device, Resource

MAX_REPORT_WAIT_S = 60.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _json(status: int, doc: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(doc).encode())


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def _resource_doc(resource: Resource) -> dict[str, Any]:
    return asdict(resource)


def _device_doc(app: Application, device: Device) -> dict[str, Any]:
    return {
        "identity": device.identity,
        "provisioned": device.provisioned,
        "connected": app.is_connected(device.identity),
        "resources": {a: _resource_doc(r) for a, r in device.resources.items()},
    }


class ControlHttpApi:
    """Request handler for the control listener."""

    def __init__(self, app: Application, urls: dict[str, str]) -> None:
        self.app = app
        self.urls = urls

    async def __call__(self, request: Request, exchange: Exchange) -> Response:
        if not is_loopback(request.peer.rpartition(":")[0]):
            return _error(403, "the control endpoint answers loopback clients only")
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        try:
            return await self._route(request, exchange, parts, query)
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            return _error(400, str(exc))
        except FileNotFoundError as exc:
            return _error(400, str(exc))

    async def _route(
        self, request: Request, exchange: Exchange, parts: list[str], query: dict[str, str]
    ) -> Response:
        method = request.method
        app = self.app
        match parts:
            case ["health"] if method == "GET":
                return _json(200, {"status": "ok", **self.urls})
            case ["devices"] if method == "GET":
                return _json(200, [_device_doc(app, d) for d in app.state.devices()])
            case ["devices"] if method == "POST":
                body = json.loads(request.body or b"{}")
                identity, token = body.get("identity"), body.get("token")
                if not isinstance(identity, str) or not isinstance(token, str | None):
                    return _error(400, "give identity (and optionally token) as strings")
                device = app.add_device(identity, token)
                return _json(201, _device_doc(app, device))
            case ["devices", identity] if method == "DELETE":
                app.device(identity)
                app.remove_device(identity)
                return Response(204)
            case ["devices", identity, "reset"] if method == "POST":
                app.device(identity)
                app.reset_device(identity)
                return Response(204)
            case ["devices", identity, "kick"] if method == "POST":
                app.device(identity)
                return _json(200, {"closed": app.kick(identity)})
            case ["devices", identity, "resources", alias] if method == "PUT":
                value = request.body.decode("utf-8", "surrogateescape")
                return _json(200, _resource_doc(app.set_value(identity, alias, value)))
            case ["devices", identity, "resources", alias] if method == "GET":
                resource = app.resource(identity, alias)
                if resource is None:
                    return _error(404, f"device {identity!r} has no resource {alias!r}")
                return _json(200, _resource_doc(resource))
            case ["devices", identity, "reports"] if method == "GET":
                return await self._reports(exchange, identity, query)
            case ["content"] if method == "GET":
                return _json(200, [c.as_dict() for c in app.contents()])
            case ["content", content_id] if method == "PUT":
                return self._upload(request, content_id, query)
            case ["content", content_id] if method == "DELETE":
                if not app.remove_content(content_id):
                    return _error(404, f"no content {content_id!r}")
                return Response(204)
            case ["faults"] if method == "POST":
                self._arm(json.loads(request.body or b"{}"))
                return _json(200, asdict(app.faults))
            case ["faults"] if method == "DELETE":
                app.faults.clear()
                return Response(204)
        return _error(404, f"no route for {method} {request.path}")

    async def _reports(self, exchange: Exchange, identity: str, query: dict[str, str]) -> Response:
        alias = query.get("alias") or None
        after = int(query.get("after", "0"))
        wait = min(float(query.get("wait", "0")), MAX_REPORT_WAIT_S)
        device = self.app.device(identity)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            changed = self.app.state.change_event(device)
            found = [
                (i, r)
                for i, r in enumerate(device.reports)
                if i >= after and (alias is None or r.alias == alias)
            ]
            if found or asyncio.get_running_loop().time() >= deadline:
                return _json(200, [{"index": i, **asdict(r)} for i, r in found])
            await exchange.wait_until(changed, deadline)

    def _upload(self, request: Request, content_id: str, query: dict[str, str]) -> Response:
        options: dict[str, Any] = {
            "content_type": query.get("type") or "application/octet-stream",
            "description": query.get("description", ""),
        }
        if "path" in query:
            copy = query.get("copy", "true").lower() != "false"
            item = self.app.add_content(content_id, Path(query["path"]), copy=copy, **options)
        else:
            item = self.app.add_content(content_id, request.body, **options)
        return _json(201, item.as_dict())

    def _arm(self, doc: dict[str, Any]) -> None:
        faults = self.app.faults
        if "fail_next" in doc:
            faults.fail_next(
                int(doc["fail_next"]), status=int(doc.get("status", 500)), path=doc.get("path")
            )
        if "delay_s" in doc:
            faults.delay_s = float(doc["delay_s"])
        if "drop_after_bytes" in doc:
            faults.drop_download_after(
                int(doc["drop_after_bytes"]), count=int(doc.get("drop_count", 1))
            )
