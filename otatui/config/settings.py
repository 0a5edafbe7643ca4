"""The TOML configuration (DESIGN.md §3), validated by pydantic.

``load_config(path)`` returns a frozen :class:`Config` or raises :class:`ConfigError`, whose
``str()`` is one line ``<file>: <key path>: <problem>`` and never holds a token. Decisions:

- Unknown keys are errors (a typo must not pass silently), except inside ``[keys]`` whose keys are
  the TUI's binding ids.
- ``protocol`` defaults to ``"mqtt"`` (Murano's main device protocol); ``"http"`` is opt-in.
- Role and credential rules: see :mod:`otatui.config.device`.
- ``insecure = true`` only permits plain ``http://`` / ``mqtt://``; TLS verification is never turned
  off (point ``ca_file`` at a private CA instead).
- Relative file keys (``token_file``, ``ca_file``, ``cert_file``, ``key_file``, ``[paths]``) are
  resolved against the config file's directory; ``~`` is expanded.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from otatui.config.device import DeviceConfig
from otatui.config.errors import ConfigError, FieldProblem, validation_error
from otatui.config.fields import (
    MODEL_CONFIG,
    ConfigPath,
    DeviceName,
    ExistingFile,
    NonEmptyStr,
    PositiveFloat,
    check_url,
)
from otatui.paths import Paths, default_config_file, default_paths

# --- tables ------------------------------------------------------------------------------------


class LimitsConfig(BaseModel):
    """``[limits]``: concurrency and progress rate-limiting."""

    model_config = MODEL_CONFIG

    concurrent_downloads: StrictInt = Field(default=4, ge=1, le=256)
    concurrent_installs: StrictInt = Field(default=2, ge=1, le=256)
    progress_interval: PositiveFloat = 2.0
    progress_percent: StrictInt = Field(default=10, ge=1, le=100)


class PathsConfig(BaseModel):
    """``[paths]``: optional overrides of the data and cache dirs."""

    model_config = MODEL_CONFIG

    data_dir: ConfigPath | None = None
    cache_dir: ConfigPath | None = None


class LanConfig(BaseModel):
    """``[lan]``: the local connector otatui serves to LAN-bridged devices (``link = "lan"``).

    Started by the engine only when a bridge has ``link = "lan"``; the devices on the LAN point
    at this machine's address and these ports as their connector. Its state (the devices' local
    tokens, the content it serves) lives under the data dir, in ``lan/`` unless ``data_dir`` says
    otherwise.
    """

    model_config = MODEL_CONFIG

    host: NonEmptyStr = "0.0.0.0"  # noqa: S104 - the LAN devices must reach it
    http_port: StrictInt = Field(default=8080, ge=0, le=65535)
    mqtt_port: StrictInt = Field(default=1883, ge=0, le=65535)
    data_dir: ConfigPath | None = None


class ConnectorConfig(BaseModel):
    """``[connector]``: where the Murano IoT Connector (or the local one) is."""

    model_config = MODEL_CONFIG

    url: StrictStr
    mqtt_url: StrictStr | None = None
    ca_file: ExistingFile | None = None
    insecure: StrictBool = False

    @model_validator(mode="after")
    def _check_urls(self) -> Self:
        check_url("url", self.url, secure="https", plain="http", insecure=self.insecure)
        if self.mqtt_url is not None:
            check_url(
                "mqtt_url",
                self.mqtt_url,
                secure="mqtts",
                plain="mqtt",
                insecure=self.insecure,
                path_allowed=False,
            )
        return self

    @property
    def base_url(self) -> str:
        """``url`` without a trailing slash, ready for paths to be appended."""
        return self.url.rstrip("/")

    @property
    def http_tls(self) -> bool:
        return self.url.lower().startswith("https:")

    @property
    def mqtt_tls(self) -> bool:
        return self.mqtt_url is not None and self.mqtt_url.lower().startswith("mqtts:")

    @property
    def mqtt_host(self) -> str | None:
        return urlsplit(self.mqtt_url).hostname if self.mqtt_url else None

    @property
    def mqtt_port(self) -> int | None:
        if self.mqtt_url is None:
            return None
        return urlsplit(self.mqtt_url).port or (8883 if self.mqtt_tls else 1883)


class Config(BaseModel):
    """The whole configuration file."""

    model_config = MODEL_CONFIG

    site: DeviceName | None = None
    connector: ConnectorConfig
    limits: LimitsConfig = LimitsConfig()
    paths: PathsConfig = PathsConfig()
    lan: LanConfig = LanConfig()
    keys: dict[StrictStr, NonEmptyStr] = Field(default_factory=dict)
    devices: tuple[DeviceConfig, ...] = ()

    _config_file: Path = PrivateAttr(default=Path("config.toml"))
    _locations: Paths | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Self:
        context = info.context or {}
        self._config_file = Path(context.get("config_file", self._config_file))
        defaults: Paths = context.get("defaults") or default_paths()
        self._locations = defaults.with_overrides(
            config_file=self._config_file,
            data_dir=self.paths.data_dir,
            cache_dir=self.paths.cache_dir,
        )
        names: dict[str, int] = {}
        identities: dict[str, int] = {}
        for i, device in enumerate(self.devices):
            if device.name in names:
                raise FieldProblem(
                    ("devices", i, "name"),
                    f"duplicate name {device.name!r} (also devices[{names[device.name]}])",
                )
            names[device.name] = i
            if device.identity in identities:
                raise FieldProblem(
                    ("devices", i, "identity"),
                    f"duplicate identity {device.identity!r} "
                    f"(also devices[{identities[device.identity]}])",
                )
            identities[device.identity] = i
            if device.protocol == "mqtt" and self.connector.mqtt_url is None:
                raise FieldProblem(
                    ("devices", i, "protocol"), "protocol 'mqtt' needs connector.mqtt_url"
                )
            tls = self.connector.mqtt_tls if device.protocol == "mqtt" else self.connector.http_tls
            if device.auth == "cert" and not tls:
                raise FieldProblem(
                    ("devices", i, "cert_file"),
                    f"certificate auth needs TLS; the connector's {device.protocol} URL is plain",
                )
            device._tokens_dir = self._locations.tokens_dir
        return self

    @property
    def config_file(self) -> Path:
        return self._config_file

    @property
    def locations(self) -> Paths:
        """Config file, data dir, cache dir, database and tokens dir, overrides applied."""
        assert self._locations is not None
        return self._locations

    @property
    def lan_data_dir(self) -> Path:
        """Where the local LAN connector keeps its state: ``[lan] data_dir`` or data dir/lan."""
        return self.lan.data_dir or self.locations.data_dir / "lan"

    @property
    def site_name(self) -> str:
        """``site``, or the config file's stem."""
        return self.site or self._config_file.stem

    def device(self, name: str) -> DeviceConfig:
        """The device called ``name``; ``LookupError`` when there is none."""
        for device in self.devices:
            if device.name == name:
                return device
        raise LookupError(f"{self._config_file}: no device named {name!r}")

    def redacted_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-ready data for display; tokens are masked."""
        data = self.model_dump(mode="json")
        data["site"] = self.site_name
        loc = self.locations
        data["paths"] = {
            "config_file": str(loc.config_file),
            "data_dir": str(loc.data_dir),
            "cache_dir": str(loc.cache_dir),
            "db_path": str(loc.db_path),
            "tokens_dir": str(loc.tokens_dir),
        }
        for shown, device in zip(data["devices"], self.devices, strict=True):
            shown["auth"] = device.auth
        return data


# --- loading -----------------------------------------------------------------------------------


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file (``None``: the default one). Raises :class:`ConfigError`."""
    file = (path if path is not None else default_config_file()).expanduser()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        if path is None:
            raise ConfigError(
                "no configuration file yet: run 'otatui demo' to try the local demo, "
                "or pass --config FILE (see config/example.toml)",
                file=file,
            ) from None
        raise ConfigError("file not found", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=file) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.from_toml(file, exc) from None
    absolute = file.absolute()
    context = {
        "base_dir": absolute.parent,
        "config_file": absolute,
        "defaults": default_paths(),
        "environ": os.environ if environ is None else environ,
    }
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error(file, exc, data, Config) from None
