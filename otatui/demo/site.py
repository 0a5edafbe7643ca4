"""The demo site on this machine: a local connector with the payload files, a "vendor" web server
for external payload items, install hooks, and the configuration the engine runs.

Everything listens on 127.0.0.1 on free ports and lives in one folder (temporary unless the
user keeps it). Device tokens are generated here, known to the connector, and written only to the
0600 configuration file.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import random
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from otatui.config import Config, load_config
from otatui.connector import Connector
from otatui.demo.script import DEVICES, DemoDevice, Offer, PayloadFile
from otatui.paths import write_secret

# The agents' install hook: prints its steps (each becomes an INSTALL_STEP), fails on demand.
HOOK = r"""
import os, sys, time
steps = ["checking the image signature", "writing the inactive partition",
         "verifying the written image", "switching the boot slot"]
for number, step in enumerate(steps, start=1):
    print(f"[{number}/{len(steps)}] {step}", flush=True)
    time.sleep(float(sys.argv[2]))
    if sys.argv[1] == "fail" and number == 3:
        sys.stderr.write("flash verify failed at 0x0803F000\n")
        sys.exit(1)
print("installed", os.environ["OTATUI_VERSION"], flush=True)
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    rate: int | None = None  # bytes per second, like a far-away host (None: as fast as it goes)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        if self.rate is None:
            super().copyfile(source, outputfile)
            return
        chunk = max(1024, self.rate // 20)
        while data := source.read(chunk):
            outputfile.write(data)
            time.sleep(len(data) / self.rate)


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-file (a cancelled or resumed download) is no error to
        print: the demo's screen is the terminal."""


class VendorServer:
    """A plain HTTP server on 127.0.0.1 standing in for a vendor's download host; `rate` limits
    its speed (bytes per second) so that a watching human sees the progress."""

    def __init__(self, root: Path, *, rate: int | None = None) -> None:
        limited = type("VendorHandler", (_Quiet,), {"rate": rate})

        def handler(*args: object, **kwargs: object) -> _Quiet:
            return limited(*args, directory=str(root), **kwargs)  # type: ignore[no-any-return]

        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever for a loop that never ran
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


class DemoSite:
    """Builds and runs the demo's connector and servers; writes the engine's configuration."""

    def __init__(
        self,
        root: Path,
        *,
        devices: tuple[DemoDevice, ...] = DEVICES,
        step_delay: float = 0.4,
        lan_ports: tuple[int, int] | None = None,
        vendor_rate: int | None = None,
    ) -> None:
        self.root = root
        self.devices = devices
        self.step_delay = step_delay
        self.files_dir = root / "payloads"
        self.tokens = {d.identity: secrets.token_hex(20) for d in devices}
        self.connector = Connector(
            devices=[(d.identity, self.tokens[d.identity]) for d in devices],
            data_dir=root / "connector",
        )
        self.vendor = VendorServer(self.files_dir / "vendor", rate=vendor_rate)
        self.lan_ports = lan_ports
        self.config_file = root / "otatui.toml"
        self.links: dict[str, str] = {}  # bridge identity -> its link ("lan", "serial:<pty>")
        self._digests: dict[str, str] = {}

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> Config:
        """Start the servers, publish the payloads, write and load the configuration."""
        self._make_payloads()
        self.vendor.start()
        await self.connector.start()
        for file in self._all_files():
            if not file.external:
                self.connector.add_content(
                    file.name,
                    self.files_dir / file.name,
                    content_type="application/octet-stream",
                    description=f"demo payload {file.name}",
                    copy=False,
                )
        write_secret(self.config_file, self.config_text())
        return load_config(self.config_file)

    async def stop(self) -> None:
        await self.connector.stop()
        self.vendor.close()

    # -- the application side --------------------------------------------------------------------

    def manifest(self, offer: Offer) -> str:
        """The `config_otau` text the application side writes for an offer."""
        if offer.malformed:  # a version is readable, the payload is not a valid item
            return json.dumps(
                {
                    "version": offer.version,
                    "name": offer.name,
                    "description": "a manifest with a broken payload item",
                    "type": "FILE",
                    "payload": "file:///etc/passwd",
                }
            )
        items = [self.item(f) for f in offer.files]
        kind, payload = (
            ("JSON", {"settings": {"reboot": True}})
            if not items
            else ("FILE", items[0])
            if len(items) == 1
            else ("URL_LIST", items)
        )
        manifest = {
            "version": offer.version,
            "name": offer.name,
            "description": offer.description or f"{offer.name} {offer.version}",
            "type": kind,
            "payload": payload,
        }
        return json.dumps(manifest, separators=(",", ":"))

    def item(self, file: PayloadFile) -> str:
        pin = f"#sha256={self._digests[file.name]}"
        if file.external:
            return self.vendor.url(file.name) + pin
        return file.name + pin

    # -- configuration -----------------------------------------------------------------------------

    def config_text(self) -> str:
        connector = self.connector
        lines = [
            "# Written by 'otatui demo': a local connector and a simulated site on 127.0.0.1.",
            'site = "Demo plant"',
            "",
            "[connector]",
            f'url = "{connector.http_url}"',
            f'mqtt_url = "{connector.mqtt_url}"',
            "insecure = true",
            "",
            "[paths]",
            f"data_dir = {json.dumps(str(self.root / 'data'))}",
            f"cache_dir = {json.dumps(str(self.root / 'cache'))}",
            "",
            "[limits]",
            "concurrent_downloads = 4",
            "concurrent_installs = 4",
            "progress_interval = 0.5",
            "progress_percent = 10",
        ]
        if self.lan_ports is not None:
            lines += [
                "",
                "[lan]",
                'host = "127.0.0.1"',
                f"http_port = {self.lan_ports[0]}",
                f"mqtt_port = {self.lan_ports[1]}",
            ]
        for device in self.devices:
            lines += ["", "[[devices]]", *self._device_lines(device)]
        return "\n".join(lines) + "\n"

    def _device_lines(self, device: DemoDevice) -> list[str]:
        token = secrets.token_hex(20) if device.refused else self.tokens[device.identity]
        values: dict[str, object] = {
            "name": device.name,
            "identity": device.identity,
            "token": token,
            "protocol": device.protocol,
            "role": device.role,
            "installed_version": device.installed_version,
        }
        if device.role == "agent":
            values["install_command"] = [
                sys.executable,
                "-c",
                HOOK,
                device.install,
                str(self.step_delay),
            ]
            values["install_timeout"] = 60
        if device.role == "bridge":
            values["link"] = self.links[device.identity]
        if device.apply != "auto":
            values["apply"] = device.apply
        return [f"{key} = {json.dumps(value)}" for key, value in values.items()]

    # -- payloads ------------------------------------------------------------------------------

    def _all_files(self) -> list[PayloadFile]:
        seen: dict[str, PayloadFile] = {}
        for device in self.devices:
            for offer in device.offers:
                for file in offer.files:
                    seen.setdefault(file.name, file)
        return list(seen.values())

    def _make_payloads(self) -> None:
        """Deterministic pseudo-random bytes per file (same demo, same digests)."""
        (self.files_dir / "vendor").mkdir(parents=True, exist_ok=True)
        for file in self._all_files():
            folder = self.files_dir / "vendor" if file.external else self.files_dir
            data = random.Random(file.name).randbytes(file.size)
            (folder / file.name).write_bytes(data)
            self._digests[file.name] = hashlib.sha256(data).hexdigest()
