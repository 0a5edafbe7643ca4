"""The TOML configuration (DESIGN.md §3), validated by pydantic.

``load_config(path)`` returns a frozen :class:`Config` or raises :class:`ConfigError`, whose
``str()`` is one line ``<file>: <key path>: <problem>`` and never holds a token. Decisions:

- Unknown keys are errors (a typo must not pass silently), except inside ``[keys]`` whose keys are
  the TUI's binding ids.
- ``protocol`` defaults to ``"mqtt"`` (Murano's main device protocol); ``"http"`` is opt-in.
- Role rules are errors, not warnings: ``agent`` needs ``install_command`` and takes no ``link``;
  ``bridge`` needs ``link`` and takes no ``install_command``; ``monitor`` takes neither
  (it only watches); ``install_timeout`` is for agents only.
- A device has at most one way to authenticate: ``token``, ``token_file``, ``token_env`` or
  ``cert_file`` + ``key_file``. With none, it is provisioned: the connector's token is kept in the
  data dir as ``tokens/<identity>`` (mode 0600, see :func:`save_stored_token`).
- ``insecure = true`` only permits plain ``http://`` / ``mqtt://``; TLS verification is never turned
  off (point ``ca_file`` at a private CA instead).
- Relative file keys (``token_file``, ``ca_file``, ``cert_file``, ``key_file``, ``[paths]``) are
  resolved against the config file's directory; ``~`` is expanded.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    PrivateAttr,
    SecretStr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    model_validator,
)

from otatui.config_error import ConfigError, FieldProblem, validation_error
from otatui.config_field import (
    ConfigPath,
    DeviceName,
    ExistingFile,
    Identity,
    NonEmptyStr,
    PositiveFloat,
    check_url,
)
from otatui.link_spec import LanLink, SerialLink, parse_link
from otatui.paths import Paths, default_config_file, default_paths
from otatui.token_store import (
    TokenError,
    load_stored_token,
    read_token_file,
    save_stored_token,
    stored_token_path,
)

__all__ = [
    "Config",
    "ConfigError",
    "ConnectorConfig",
    "DeviceConfig",
    "LanLink",
    "LimitsConfig",
    "PathsConfig",
    "SerialLink",
    "TokenError",
    "load_config",
    "load_stored_token",
    "save_stored_token",
    "stored_token_path",
]

Role = Literal["agent", "bridge", "monitor"]
Protocol = Literal["mqtt", "http"]
Auth = Literal["token", "token_file", "token_env", "cert", "provisioned"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_INSTALL_TIMEOUT = 600.0


_MODEL = ConfigDict(frozen=True, extra="forbid")


# --- tables ------------------------------------------------------------------------------------


class LimitsConfig(BaseModel):
    """``[limits]``: concurrency and progress rate-limiting."""

    model_config = _MODEL

    concurrent_downloads: StrictInt = Field(default=4, ge=1, le=256)
    concurrent_installs: StrictInt = Field(default=2, ge=1, le=256)
    progress_interval: PositiveFloat = 2.0
    progress_percent: StrictInt = Field(default=10, ge=1, le=100)


class PathsConfig(BaseModel):
    """``[paths]``: optional overrides of the data and cache dirs."""

    model_config = _MODEL

    data_dir: ConfigPath | None = None
    cache_dir: ConfigPath | None = None


class ConnectorConfig(BaseModel):
    """``[connector]``: where the Murano IoT Connector (or the local one) is."""

    model_config = _MODEL

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


class DeviceConfig(BaseModel):
    """One ``[[devices]]`` entry."""

    model_config = _MODEL

    name: DeviceName
    identity: Identity
    token: SecretStr | None = None
    token_file: ExistingFile | None = None
    token_env: StrictStr | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None
    protocol: Protocol = "mqtt"
    role: Role
    installed_version: NonEmptyStr | None = None
    install_command: tuple[NonEmptyStr, ...] | None = None
    install_timeout: PositiveFloat = _DEFAULT_INSTALL_TIMEOUT
    link: Annotated[
        InstanceOf[SerialLink] | InstanceOf[LanLink] | None, BeforeValidator(parse_link)
    ] = None

    _tokens_dir: Path | None = PrivateAttr(default=None)

    @field_serializer("link")
    def _link_text(self, link: SerialLink | LanLink | None) -> str | None:
        return None if link is None else str(link)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Self:
        self._check_auth(info)
        self._check_role()
        return self

    def _check_auth(self, info: ValidationInfo) -> None:
        if self.token is not None and not self.token.get_secret_value().strip():
            raise FieldProblem(("token",), "must not be empty")
        given = [
            key
            for key, value in (
                ("token", self.token),
                ("token_file", self.token_file),
                ("token_env", self.token_env),
                ("cert_file", self.cert_file or self.key_file),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise FieldProblem(
                (given[1] if given[1] != "cert_file" or self.cert_file else "key_file",),
                f"{given[0]} is set too: use only one of token, token_file, token_env "
                "or cert_file + key_file",
            )
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise FieldProblem((missing,), "cert_file and key_file go together: set both")
        if self.token_file is not None:
            try:
                text = read_token_file(self.token_file)
            except TokenError as exc:
                raise FieldProblem(("token_file",), str(exc)) from None
            if not text:
                raise FieldProblem(("token_file",), f"{self.token_file} holds no token")
        if self.token_env is not None:
            if not _ENV_NAME.fullmatch(self.token_env):
                raise FieldProblem(("token_env",), "must be an environment variable name")
            environ: Mapping[str, str] = (info.context or {}).get("environ", os.environ)
            if not environ.get(self.token_env, "").strip():
                raise FieldProblem(
                    ("token_env",), f"environment variable {self.token_env} is not set or empty"
                )

    def _check_role(self) -> None:
        if self.role == "agent":
            if self.install_command is None:
                raise FieldProblem(("install_command",), "required for role = 'agent'")
            if not self.install_command:
                raise FieldProblem(("install_command",), "must name a program to run")
        elif self.install_command is not None:
            raise FieldProblem(
                ("install_command",), f"only an agent runs an install command, not a {self.role}"
            )
        if self.role == "bridge" and self.link is None:
            raise FieldProblem(("link",), "required for role = 'bridge' ('lan' or 'serial:...')")
        if self.role != "bridge" and self.link is not None:
            raise FieldProblem(("link",), f"only a bridge has a link, not a {self.role}")
        if self.role != "agent" and "install_timeout" in self.model_fields_set:
            raise FieldProblem(("install_timeout",), f"only for role = 'agent', not {self.role}")

    @property
    def auth(self) -> Auth:
        """How this device authenticates: the key that provides its credentials."""
        if self.token is not None:
            return "token"
        if self.token_file is not None:
            return "token_file"
        if self.token_env is not None:
            return "token_env"
        if self.cert_file is not None:
            return "cert"
        return "provisioned"

    @property
    def stored_token_file(self) -> Path | None:
        """Where a provisioned token is kept (``None`` for a device outside a loaded config)."""
        if self._tokens_dir is None:
            return None
        return stored_token_path(self._tokens_dir, self.identity)

    def token_value(self) -> str | None:
        """The device's token, or ``None`` (certificate auth, or not provisioned yet).

        The only place a secret is revealed. Raises :class:`TokenError` when a configured source
        cannot be read now.
        """
        match self.auth:
            case "token":
                assert self.token is not None
                return self.token.get_secret_value().strip()
            case "token_file":
                assert self.token_file is not None
                text = read_token_file(self.token_file, device=self.name)
                if not text:
                    raise TokenError(f"device {self.name}: {self.token_file} holds no token")
                return text
            case "token_env":
                assert self.token_env is not None
                value = os.environ.get(self.token_env, "").strip()
                if not value:
                    raise TokenError(
                        f"device {self.name}: environment variable {self.token_env} "
                        "is not set or empty"
                    )
                return value
            case "cert":
                return None
            case "provisioned":
                if self._tokens_dir is None:
                    return None
                return load_stored_token(self._tokens_dir, self.identity)

    def save_token(self, token: str) -> Path:
        """Keep the token the connector gave at provisioning (mode 0600); returns the file."""
        if self.auth != "provisioned":
            raise TokenError(
                f"device {self.name}: its token comes from {self.auth}, not provisioning"
            )
        if self._tokens_dir is None:
            raise TokenError(f"device {self.name}: no data dir known (not from load_config)")
        return save_stored_token(self._tokens_dir, self.identity, token)


class Config(BaseModel):
    """The whole configuration file."""

    model_config = _MODEL

    site: DeviceName | None = None
    connector: ConnectorConfig
    limits: LimitsConfig = LimitsConfig()
    paths: PathsConfig = PathsConfig()
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
        raise validation_error(file, exc, data) from None
