"""The TOML configuration (DESIGN.md §3): see `otatui.config.settings` for the rules."""

from otatui.config.device import DeviceConfig
from otatui.config.errors import ConfigError
from otatui.config.link import LanLink, SerialLink
from otatui.config.settings import (
    Config,
    ConnectorConfig,
    LanConfig,
    LimitsConfig,
    PathsConfig,
    load_config,
)
from otatui.config.tokens import (
    TokenError,
    load_stored_token,
    save_stored_token,
    stored_token_path,
)

__all__ = [
    "Config",
    "ConfigError",
    "ConnectorConfig",
    "DeviceConfig",
    "LanConfig",
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
