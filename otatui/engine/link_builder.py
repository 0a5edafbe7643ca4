"""Each device's link, built from the configuration, and the local connector of the LAN bridges.

- an agent: `LocalLink` (its install command);
- a bridge with ``link = "serial:<port>?baud=<n>"``: `SerialLink(port, baud, identity=...)`;
- a bridge with ``link = "lan"``: `LanLink(connector, identity)`, where `connector` is ONE local
  connector (`otatui.connector.Connector`) that `LinkBuilder.start()` serves for every LAN bridge
  on ``[lan]`` host / http_port / mqtt_port, with its state under the data dir (the devices'
  LOCAL tokens and the content it serves); `aclose()` stops it. A device on the LAN points at
  this machine's address and those ports as its connector, and never gets its cloud token.
"""

from __future__ import annotations

from otatui.config import Config, DeviceConfig, LanLink, SerialLink
from otatui.connector import Connector
from otatui.links import lan, serial
from otatui.links.link import Link
from otatui.links.local import LocalLink
from otatui.murano.channel import ChannelError


class LinkBuilder:
    """Builds the link of each device (call it with the device's configuration)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lan_connector: Connector | None = None
        self.lan_error = ""

    @property
    def needs_lan(self) -> bool:
        return any(isinstance(d.link, LanLink) for d in self.config.devices if d.role == "bridge")

    async def start(self) -> None:
        """Serve the local connector if a bridge has ``link = "lan"`` (else nothing).

        When it cannot be served, the LAN bridges fail with the reason and the others run.
        """
        if self.lan_connector is not None or not self.needs_lan:
            return
        lan = self.config.lan
        connector = Connector(
            host=lan.host,
            http_port=lan.http_port,
            mqtt_port=lan.mqtt_port,
            data_dir=self.config.lan_data_dir,
        )
        try:
            await connector.start()
        except OSError as exc:
            self.lan_error = (
                f"cannot serve the LAN connector on {lan.host} ports {lan.http_port} (HTTP) and"
                f" {lan.mqtt_port} (MQTT): {exc.strerror or exc}; change [lan] in the config"
            )
            return
        self.lan_connector, self.lan_error = connector, ""

    async def aclose(self) -> None:
        connector, self.lan_connector = self.lan_connector, None
        if connector is not None:
            await connector.stop()

    def __call__(self, device: DeviceConfig) -> Link:
        if device.role == "agent" and device.install_command:
            return LocalLink(device.install_command, timeout=device.install_timeout)
        link = device.link
        if isinstance(link, SerialLink):
            return serial.SerialLink(link.port, link.baud, identity=device.identity)
        if isinstance(link, LanLink):
            if self.lan_connector is None:
                reason = self.lan_error or "the LAN connector is not running"
                raise ChannelError(f"device {device.name}: {reason}")
            return lan.LanLink(self.lan_connector, device.identity)
        raise ChannelError(f"device {device.name}: a {device.role} has no link")
