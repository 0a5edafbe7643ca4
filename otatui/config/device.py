"""One ``[[devices]]`` entry of the configuration: identity, credentials, role, link.

Rules (errors, not warnings): a device has at most one way to authenticate (``token``,
``token_file``, ``token_env`` or ``cert_file`` + ``key_file``; none: provisioned, the token then
kept in the data dir); ``agent`` needs ``install_command`` and takes no ``link``; ``bridge`` needs
``link`` and takes no ``install_command``; ``monitor`` takes neither; ``install_timeout`` is for
agents only; ``apply`` (``"auto"``, the default, or ``"confirm"``: the update waits for the
technician before it is installed or pushed) is for agents and bridges. ``protocol`` defaults to
``"mqtt"``. ``token_value()`` is the only place a token is
revealed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    InstanceOf,
    PrivateAttr,
    SecretStr,
    StrictStr,
    ValidationInfo,
    field_serializer,
    model_validator,
)

from otatui.config.errors import FieldProblem
from otatui.config.fields import (
    MODEL_CONFIG,
    DeviceName,
    ExistingFile,
    Identity,
    NonEmptyStr,
    PositiveFloat,
)
from otatui.config.link import LanLink, SerialLink, parse_link
from otatui.config.tokens import (
    TokenError,
    load_stored_token,
    read_token_file,
    save_stored_token,
    stored_token_path,
)

Role = Literal["agent", "bridge", "monitor"]
Protocol = Literal["mqtt", "http"]
Auth = Literal["token", "token_file", "token_env", "cert", "provisioned"]
Apply = Literal["auto", "confirm"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_INSTALL_TIMEOUT = 600.0


class DeviceConfig(BaseModel):
    """One ``[[devices]]`` entry."""

    model_config = MODEL_CONFIG

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
    apply: Apply = "auto"
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
        if self.role == "monitor" and "apply" in self.model_fields_set:
            raise FieldProblem(("apply",), "a monitor installs nothing: no apply for it")

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
