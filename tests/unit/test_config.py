"""The TOML configuration: loading, every validation rule, one-line errors, no secret ever shown."""

from __future__ import annotations

import json
import os
import stat
import textwrap
import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from otatui.config import (
    Config,
    ConfigError,
    LanLink,
    SerialLink,
    TokenError,
    load_config,
    load_stored_token,
    save_stored_token,
    stored_token_path,
)

REPO = Path(__file__).resolve().parents[2]
TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"  # the test token: must never be shown

CONNECTOR = """
[connector]
url = "https://abc.m2.exosite.io"
mqtt_url = "mqtts://abc.m2.exosite.io:8883"
"""
AGENT = """
[[devices]]
name = "pump-7"
identity = "a0001"
role = "agent"
install_command = ["sh", "install.sh"]
"""


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ=environ or {})


def error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    """The error's text, checked to be one line, to name the file, and to hold no token."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'site.toml'}: ")
    assert TOKEN not in message
    assert TOKEN not in "".join(traceback.format_exception(info.value))
    return message


def device(**keys: object) -> str:
    """A [[devices]] table: an MQTT agent unless ``keys`` say otherwise (None drops a key)."""
    table: dict[str, object] = {
        "name": "d1",
        "identity": "i1",
        "role": "agent",
        "install_command": ["sh", "install.sh"],
    }
    table.update(keys)
    lines = [f"{k} = {json.dumps(v)}" for k, v in table.items() if v is not None]
    return "\n[[devices]]\n" + "\n".join(lines) + "\n"


# --- the shipped examples ----------------------------------------------------------------------


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMP7_TOKEN", TOKEN)
    monkeypatch.setenv("SENSOR2_TOKEN", TOKEN)
    config = load_config(REPO / "config" / "example.toml")
    assert config.site_name == "ACME plant"
    assert config.connector.http_tls and config.connector.mqtt_tls
    assert config.connector.mqtt_port == 8883
    roles = {(d.name, d.role, d.protocol) for d in config.devices}
    assert roles == {
        ("pump-7", "agent", "mqtt"),
        ("meter-3", "monitor", "http"),
        ("sensor-1", "bridge", "mqtt"),
        ("sensor-2", "bridge", "http"),
    }
    assert config.device("sensor-1").link == SerialLink("/dev/ttyUSB0", 115200)
    assert config.device("sensor-2").link == LanLink()
    assert config.device("pump-7").token_value() == TOKEN
    assert config.device("sensor-1").auth == "provisioned"
    assert TOKEN not in json.dumps(config.redacted_dict())


# --- defaults, lookups, immutability -----------------------------------------------------------


def test_minimal_config_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTOR + AGENT)
    assert config.site_name == "site"  # the file's stem
    (pump,) = config.devices
    assert pump.protocol == "mqtt"
    assert pump.install_timeout == 600
    assert pump.install_command == ("sh", "install.sh")
    assert config.limits.concurrent_downloads == 4
    assert config.limits.concurrent_installs == 2
    assert config.limits.progress_interval == 2.0
    assert config.limits.progress_percent == 10
    assert config.keys == {}
    assert not config.connector.insecure
    assert config.config_file == tmp_path / "site.toml"


def test_device_lookup_and_frozen_models(tmp_path: Path) -> None:
    config = load(tmp_path, 'site = "ACME"\n' + CONNECTOR + AGENT)
    assert config.site_name == "ACME"
    assert config.device("pump-7").identity == "a0001"
    with pytest.raises(LookupError, match="no device named 'nope'"):
        config.device("nope")
    with pytest.raises(ValidationError):
        config.device("pump-7").role = "monitor"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.site = "other"  # type: ignore[misc]


def test_keys_table_accepts_any_binding_id(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTOR + '[keys]\nquit = "ctrl+q"\n"fleet.filter" = "slash,f"\n')
    assert config.keys == {"quit": "ctrl+q", "fleet.filter": "slash,f"}
    assert "keys.quit: must be a string" in error(tmp_path, CONNECTOR + "[keys]\nquit = 3\n")
    assert "keys.quit: must not be empty" in error(tmp_path, CONNECTOR + '[keys]\nquit = ""\n')


def test_limits_are_checked(tmp_path: Path) -> None:
    config = load(
        tmp_path, CONNECTOR + "[limits]\nconcurrent_downloads = 8\nprogress_interval = 1\n"
    )
    assert config.limits.concurrent_downloads == 8
    assert config.limits.progress_interval == 1.0
    assert "limits.concurrent_downloads:" in error(
        tmp_path, CONNECTOR + "[limits]\nconcurrent_downloads = 0\n"
    )
    assert "limits.progress_percent: must be a whole number" in error(
        tmp_path, CONNECTOR + '[limits]\nprogress_percent = "10"\n'
    )
    assert "limits.progress_interval:" in error(
        tmp_path, CONNECTOR + "[limits]\nprogress_interval = nan\n"
    )


# --- unknown keys, types, uniqueness -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (CONNECTOR + "colour = 1\n", "colour: unknown key 'colour'"),
        (CONNECTOR + "verify = true\n", "connector.verify: unknown key 'verify'"),
        (
            CONNECTOR + device(tokn="x"),
            "devices[0].tokn: unknown key 'tokn' (did you mean 'token'?)",
        ),
        (CONNECTOR + device(protocl="http"), "devices[0].protocl: unknown key 'protocl' (did you"),
        (CONNECTOR + "[paths]\ndata = 'x'\n", "paths.data: unknown key 'data'"),
    ],
)
def test_unknown_keys_are_errors(tmp_path: Path, text: str, where: str) -> None:
    assert where in error(tmp_path, text)


def test_a_mistyped_required_key_is_reported_as_unknown_not_as_missing(tmp_path: Path) -> None:
    text = '[connector]\nurll = "https://abc.m2.exosite.io"\n'
    message = error(tmp_path, text)
    assert message == (
        f"{tmp_path / 'site.toml'}: connector.urll: unknown key 'urll' (did you mean 'url'?)"
    )  # not "url: required key is missing (and 1 more problem)": the typo explains it
    # A problem the typo does not explain is still counted.
    message = error(tmp_path, text + "insecure = 'yes'\n")
    assert message.endswith("unknown key 'urll' (did you mean 'url'?) (and 1 more problem)")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # Each table suggests its own keys, those of its model.
        (
            CONNECTOR + "[lan]\nhttp_prot = 1\n",
            "lan.http_prot: unknown key 'http_prot' (did you mean 'http_port'?)",
        ),
        (CONNECTOR + "[limits]\nconcurent_installs = 1\n", "(did you mean 'concurrent_installs'?)"),
        (CONNECTOR + "[connector.x]\n", "connector.x: unknown key 'x'"),
        ("Site = 'x'\n" + CONNECTOR, "Site: unknown key 'Site' (did you mean 'site'?)"),
        (CONNECTOR + device(apply_mode="confirm"), "(did you mean 'apply'?)"),
    ],
)
def test_suggestions_come_from_the_table_s_own_keys(tmp_path: Path, text: str, where: str) -> None:
    assert where in error(tmp_path, text)


def test_strict_types(tmp_path: Path) -> None:
    assert "connector.insecure: must be true or false" in error(
        tmp_path, CONNECTOR + 'insecure = "yes"\n'
    )
    assert "devices[0].install_command: must be a list" in error(
        tmp_path, CONNECTOR + device(install_command="sh install.sh")
    )
    assert "devices[0].protocol:" in error(tmp_path, CONNECTOR + device(protocol="mqtt5"))
    assert "devices[0].role:" in error(tmp_path, CONNECTOR + device(role="gateway"))
    assert "connector: required key is missing" in error(tmp_path, "site = 'x'\n")
    assert "devices[0].identity: required key is missing" in error(
        tmp_path, CONNECTOR + device(identity=None)
    )


def test_names_and_identities_are_unique_and_safe(tmp_path: Path) -> None:
    two = device(name="a", identity="x") + device(name="a", identity="y")
    assert "devices[1].name: duplicate name 'a' (also devices[0])" in error(
        tmp_path, CONNECTOR + two
    )
    two = device(name="a", identity="x") + device(name="b", identity="x")
    assert "devices[1].identity: duplicate identity 'x'" in error(tmp_path, CONNECTOR + two)
    for bad in ("../etc", "a/b", ".hidden", "", "with space"):
        assert "devices[0].identity:" in error(tmp_path, CONNECTOR + device(identity=bad))
    assert "devices[0].name:" in error(tmp_path, CONNECTOR + device(name=" padded"))
    assert "devices[0].name:" in error(tmp_path, CONNECTOR + device(name="line\nbreak"))


def test_many_problems_report_the_first_and_a_count(tmp_path: Path) -> None:
    message = error(tmp_path, CONNECTOR + "a = 1\nb = 2\nc = 3\n")
    assert message.endswith("(and 2 more problems)")


# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "where"),
    [
        ({"install_command": None}, "devices[0].install_command: required for role = 'agent'"),
        ({"install_command": []}, "devices[0].install_command: must name a program"),
        ({"install_command": ["sh", ""]}, "devices[0].install_command[1]: must not be empty"),
        ({"link": "lan"}, "devices[0].link: only a bridge has a link, not a agent"),
        ({"role": "bridge", "install_command": None}, "devices[0].link: required for role"),
        ({"role": "bridge", "link": "lan"}, "devices[0].install_command: only an agent"),
        ({"role": "monitor"}, "devices[0].install_command: only an agent"),
        (
            {"role": "monitor", "install_command": None, "link": "lan"},
            "devices[0].link: only a bridge",
        ),
        (
            {"role": "monitor", "install_command": None, "install_timeout": 5},
            "devices[0].install_timeout: only for role = 'agent'",
        ),
        ({"install_timeout": 0}, "devices[0].install_timeout:"),
    ],
)
def test_role_rules(tmp_path: Path, keys: dict[str, object], where: str) -> None:
    assert where in error(tmp_path, CONNECTOR + device(**keys))


def test_each_role_valid(tmp_path: Path) -> None:
    text = (
        CONNECTOR
        + device(name="a", identity="a", install_timeout=30)
        + device(name="b", identity="b", role="bridge", install_command=None, link="lan")
        + device(name="m", identity="m", role="monitor", install_command=None, protocol="http")
    )
    config = load(tmp_path, text)
    assert config.device("a").install_timeout == 30
    assert config.device("b").link == LanLink()
    assert config.device("m").protocol == "http"


# --- links -------------------------------------------------------------------------------------


def bridge(link: object) -> str:
    return CONNECTOR + device(role="bridge", install_command=None, link=link)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("lan", LanLink()),
        ("serial:/dev/ttyUSB0", SerialLink("/dev/ttyUSB0", 115200)),
        ("serial:/dev/ttyS1?baud=9600", SerialLink("/dev/ttyS1", 9600)),
        ("serial:COM3?baud=57600", SerialLink("COM3", 57600)),
    ],
)
def test_links_parse(tmp_path: Path, link: str, expected: object) -> None:
    config = load(tmp_path, bridge(link))
    assert config.devices[0].link == expected
    assert config.redacted_dict()["devices"][0]["link"] == str(expected)


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        ("wifi", "unknown link kind"),
        ("serial:", "has no port"),
        ("serial:ttyUSB0", "absolute device path"),
        ("serial:/dev/ttyUSB0?baud=fast", "baud must be a whole number"),
        ("serial:/dev/ttyUSB0?baud=0", "baud must be a whole number"),
        ("serial:/dev/ttyUSB0?baud=9600&baud=1200", "given twice"),
        ("serial:/dev/ttyUSB0?parity=E", "unknown serial link option 'parity'"),
        ("serial:/dev/ttyUSB0?baud", "options must look like"),
        (5, "must be a string"),
    ],
)
def test_bad_links(tmp_path: Path, link: object, problem: str) -> None:
    message = error(tmp_path, bridge(link))
    assert "devices[0].link: " in message
    assert problem in message


# --- connector URLs ----------------------------------------------------------------------------


def connector(url: str, mqtt_url: str | None = None, insecure: bool = False) -> str:
    text = f"[connector]\nurl = {json.dumps(url)}\ninsecure = {json.dumps(insecure)}\n"
    if mqtt_url is not None:
        text += f"mqtt_url = {json.dumps(mqtt_url)}\n"
    return text


def test_plain_urls_need_insecure(tmp_path: Path) -> None:
    assert "connector.url: plain http:// is refused unless insecure = true" in error(
        tmp_path, connector("http://127.0.0.1:8080")
    )
    assert "connector.mqtt_url: plain mqtt:// is refused unless insecure = true" in error(
        tmp_path, connector("https://h", "mqtt://127.0.0.1:1883")
    )
    config = load(tmp_path, connector("http://127.0.0.1:8080/", "mqtt://127.0.0.1", insecure=True))
    assert config.connector.base_url == "http://127.0.0.1:8080"
    assert not config.connector.http_tls and not config.connector.mqtt_tls
    assert (config.connector.mqtt_host, config.connector.mqtt_port) == ("127.0.0.1", 1883)


@pytest.mark.parametrize(
    ("url", "mqtt_url", "where"),
    [
        ("ftp://h", None, "connector.url: must start with https://"),
        ("https://", None, "connector.url: has no host"),
        ("https://user:pw@h", None, "connector.url: must not hold credentials"),
        ("https://h?x=1", None, "connector.url: must not have a query"),
        ("https://h:99999", None, "connector.url: not a valid URL"),
        ("h.m2.exosite.io", None, "connector.url: must start with https://"),
        ("https://h", "https://h", "connector.mqtt_url: must start with mqtts://"),
        ("https://h", "mqtts://h:8883/path", "connector.mqtt_url: must be mqtts://host[:port]"),
    ],
)
def test_bad_urls(tmp_path: Path, url: str, mqtt_url: str | None, where: str) -> None:
    assert where in error(tmp_path, connector(url, mqtt_url))


def test_mqtt_devices_need_mqtt_url(tmp_path: Path) -> None:
    assert "devices[0].protocol: protocol 'mqtt' needs connector.mqtt_url" in error(
        tmp_path, connector("https://h") + device()
    )
    config = load(tmp_path, connector("https://h") + device(protocol="http"))
    assert config.devices[0].protocol == "http"


def test_ca_file_must_exist_and_is_relative_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("---")
    monkeypatch.chdir(tmp_path / "certs")  # resolution must not depend on the working dir
    config = load(tmp_path, CONNECTOR + 'ca_file = "certs/ca.pem"\n')
    assert config.connector.ca_file == tmp_path / "certs" / "ca.pem"
    message = error(tmp_path, CONNECTOR + 'ca_file = "missing.pem"\n')
    assert f"connector.ca_file: file not found (relative paths start at {tmp_path})" in message
    assert "connector.ca_file: not a regular file" in error(tmp_path, CONNECTOR + 'ca_file = "."\n')


# --- tokens and other credentials --------------------------------------------------------------


def test_token_sources_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "t").write_text(TOKEN)
    assert "devices[0].token_env: token is set too: use only one of" in error(
        tmp_path, CONNECTOR + device(token=TOKEN, token_env="X"), {"X": "v"}
    )
    assert "devices[0].token_file: token is set too" in error(
        tmp_path, CONNECTOR + device(token=TOKEN, token_file="t")
    )
    (tmp_path / "c.pem").write_text("c")
    (tmp_path / "k.pem").write_text("k")
    assert "devices[0].cert_file: token_file is set too" in error(
        tmp_path, CONNECTOR + device(token_file="t", cert_file="c.pem", key_file="k.pem")
    )
    assert "devices[0].key_file: token is set too" in error(
        tmp_path, CONNECTOR + device(token=TOKEN, key_file="k.pem")
    )
    assert "devices[0].key_file: cert_file and key_file go together" in error(
        tmp_path, CONNECTOR + device(cert_file="c.pem")
    )
    assert "devices[0].cert_file: cert_file and key_file go together" in error(
        tmp_path, CONNECTOR + device(key_file="k.pem")
    )


def test_inline_token(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTOR + device(token=f" {TOKEN}\n"))
    assert config.devices[0].auth == "token"
    assert config.devices[0].token_value() == TOKEN
    assert "devices[0].token: must not be empty" in error(tmp_path, CONNECTOR + device(token=" "))


def test_token_file_is_relative_to_the_config_and_must_hold_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "pump").write_text(TOKEN + "\n")
    monkeypatch.chdir(tmp_path / "tokens")
    config = load(tmp_path, CONNECTOR + device(token_file="tokens/pump"))
    (pump,) = config.devices
    assert pump.token_file == tmp_path / "tokens" / "pump"
    assert pump.auth == "token_file"
    assert pump.token_value() == TOKEN
    (tmp_path / "tokens" / "pump").write_text("")
    with pytest.raises(TokenError, match="holds no token"):
        pump.token_value()
    assert "holds no token" in error(tmp_path, CONNECTOR + device(token_file="tokens/pump"))
    assert "devices[0].token_file: file not found" in error(
        tmp_path, CONNECTOR + device(token_file="nope")
    )


def test_token_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = CONNECTOR + device(token_env="PUMP7_TOKEN")
    assert "devices[0].token_env: environment variable PUMP7_TOKEN is not set or empty" in error(
        tmp_path, text, {}
    )
    assert "is not set or empty" in error(tmp_path, text, {"PUMP7_TOKEN": "  "})
    assert "devices[0].token_env: must be an environment variable name" in error(
        tmp_path, CONNECTOR + device(token_env="PUMP-7"), {"PUMP-7": "x"}
    )
    monkeypatch.setenv("PUMP7_TOKEN", TOKEN)
    config = load_config(write(tmp_path, text))  # the process environment by default
    assert config.devices[0].token_value() == TOKEN
    monkeypatch.delenv("PUMP7_TOKEN")
    with pytest.raises(TokenError, match="PUMP7_TOKEN is not set") as info:
        config.devices[0].token_value()
    assert TOKEN not in str(info.value)


def test_certificate_auth_needs_tls(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("c")
    (tmp_path / "k.pem").write_text("k")
    config = load(tmp_path, CONNECTOR + device(cert_file="c.pem", key_file="k.pem"))
    assert config.devices[0].auth == "cert"
    assert config.devices[0].token_value() is None
    plain = connector("https://h", "mqtt://h", insecure=True)
    assert "devices[0].cert_file: certificate auth needs TLS" in error(
        tmp_path, plain + device(cert_file="c.pem", key_file="k.pem")
    )


def test_provisioned_token_is_stored_privately(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTOR + AGENT)
    pump = config.device("pump-7")
    assert pump.auth == "provisioned"
    assert pump.token_value() is None
    stored = pump.save_token(TOKEN)
    assert stored == tmp_path / "xdg-data" / "otatui" / "tokens" / "a0001"
    assert stored == pump.stored_token_file
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert pump.token_value() == TOKEN
    # a fresh load finds it again
    assert load(tmp_path, CONNECTOR + AGENT).device("pump-7").token_value() == TOKEN


def test_stored_token_helpers(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    assert load_stored_token(tokens, "a1") is None
    save_stored_token(tokens, "a1", TOKEN)
    assert load_stored_token(tokens, "a1") == TOKEN
    assert stored_token_path(tokens, "a1") == tokens / "a1"
    with pytest.raises(ValueError, match="safe file name"):
        stored_token_path(tokens, "../a1")
    with pytest.raises(TokenError, match="empty or multi-line"):
        save_stored_token(tokens, "a1", "two\nlines")
    assert TOKEN not in os.listdir(tokens)


def test_save_token_refused_for_configured_tokens(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTOR + device(token=TOKEN))
    with pytest.raises(TokenError, match="comes from token") as info:
        config.devices[0].save_token("other")
    assert TOKEN not in str(info.value)


# --- paths -------------------------------------------------------------------------------------


def test_locations_follow_xdg_and_paths_overrides(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTOR)
    assert config.locations.config_file == tmp_path / "site.toml"
    assert config.locations.data_dir == tmp_path / "xdg-data" / "otatui"
    assert config.locations.cache_dir == tmp_path / "xdg-cache" / "otatui"
    config = load(tmp_path, CONNECTOR + '[paths]\ndata_dir = "state"\ncache_dir = "~/c"\n')
    assert config.locations.db_path == tmp_path / "state" / "otatui.db"
    assert config.locations.tokens_dir == tmp_path / "state" / "tokens"
    assert config.locations.cache_dir == Path("~/c").expanduser()
    assert "paths.data_dir: must not be empty" in error(
        tmp_path, CONNECTOR + '[paths]\ndata_dir=""\n'
    )


# --- file-level errors -------------------------------------------------------------------------


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    message = error(tmp_path, CONNECTOR + "[[devices]\nname = 1\n")
    assert ": line 5, column " in message
    assert "invalid TOML" in message
    message = error(tmp_path, CONNECTOR + f'[[devices]]\ntoken = "{TOKEN}\n')
    assert "invalid TOML" in message


def test_missing_default_config_suggests_demo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "xdg-config" / "otatui" / "config.toml"))
    assert "otatui demo" in message and "--config" in message
    assert "\n" not in message


def test_missing_explicit_file_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)
    (tmp_path / "latin1.toml").write_bytes(b'site = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(tmp_path / "latin1.toml")


def test_default_config_file_is_used(tmp_path: Path) -> None:
    default = tmp_path / "xdg-config" / "otatui" / "config.toml"
    default.parent.mkdir(parents=True)
    default.write_text(CONNECTOR)
    assert load_config().config_file == default


# --- secrets never shown -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        CONNECTOR + f'token = "{TOKEN}"\n',  # a token in the wrong table
        CONNECTOR + device(protocol=TOKEN),
        CONNECTOR + device(role=TOKEN),
        CONNECTOR + device(identity=TOKEN + "/x"),
        CONNECTOR + device(name=TOKEN + "\n"),
        CONNECTOR + device(install_command=TOKEN),
        CONNECTOR + device(installed_version=[TOKEN]),
        CONNECTOR + device(role="bridge", install_command=None, link=TOKEN),
        CONNECTOR + device(role="bridge", install_command=None, link=f"serial:/dev/x?baud={TOKEN}"),
        connector(TOKEN),
        connector(f"https://u:{TOKEN}@h"),
        connector(f"http://{TOKEN}"),
        connector("https://h", f"mqtts://h/{TOKEN}"),
        CONNECTOR + device(token=TOKEN, token_env="X"),
        CONNECTOR + device(token=TOKEN, role="monitor"),
        CONNECTOR + f"[keys]\n{TOKEN} = 1\n",
        CONNECTOR + device(token_file=TOKEN),
        CONNECTOR + "[limits]\n" + f'concurrent_downloads = "{TOKEN}"\n',
        # a name that echoes in a message, equal to a token: scrubbed
        CONNECTOR
        + device(name=TOKEN, identity="x", token=TOKEN)
        + device(name=TOKEN, identity="y"),
    ],
)
def test_no_token_in_any_error(tmp_path: Path, text: str) -> None:
    message = error(tmp_path, text)  # asserts the token is absent
    assert ": " in message


def test_no_token_in_repr_str_or_dumps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t").write_text(TOKEN)
    monkeypatch.setenv("E_TOKEN", TOKEN)
    text = (
        CONNECTOR
        + device(name="a", identity="a", token=TOKEN)
        + device(name="b", identity="b", token_file="t")
        + device(name="c", identity="c", token_env="E_TOKEN")
    )
    config = load_config(write(tmp_path, text))
    save_stored_token(config.locations.tokens_dir, "c", TOKEN)
    shown = [
        repr(config),
        str(config),
        repr(config.devices),
        config.model_dump_json(),
        str(config.model_dump()),
        json.dumps(config.redacted_dict()),
    ]
    for text_shown in shown:
        assert TOKEN not in text_shown
    redacted = config.redacted_dict()
    assert redacted["devices"][0]["token"] == "**********"
    assert [d["auth"] for d in redacted["devices"]] == ["token", "token_file", "token_env"]
    assert redacted["paths"]["db_path"].endswith("otatui.db")
    assert all(d.token_value() == TOKEN for d in config.devices)


def test_known_token_values_are_scrubbed_even_when_not_token_shaped(tmp_path: Path) -> None:
    short = "pw-short-1"
    text = (
        CONNECTOR + device(name=short, identity="x", token=short) + device(name=short, identity="y")
    )
    message = error(tmp_path, text)
    assert "devices[1].name: duplicate name '<redacted>'" in message
    assert short not in message


def test_error_messages_read_well(tmp_path: Path) -> None:
    message = error(tmp_path, CONNECTOR + device(protocol="http", role="bridge", link="lan"))
    assert message == (
        f"{tmp_path / 'site.toml'}: devices[0].install_command: "
        "only an agent runs an install command, not a bridge"
    )


# --- apply gate and the LAN connector (session 2) -----------------------------------------------


def test_apply_defaults_to_auto_and_takes_confirm(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        CONNECTOR
        + device(name="a", identity="i1")
        + device(name="b", identity="i2", apply="confirm")
        + device(
            name="c",
            identity="i3",
            role="bridge",
            install_command=None,
            link="lan",
            apply="confirm",
        ),
    )
    assert [d.apply for d in config.devices] == ["auto", "confirm", "confirm"]


def test_apply_rejects_other_values_and_monitors(tmp_path: Path) -> None:
    assert "apply" in error(tmp_path, CONNECTOR + device(apply="later"))
    message = error(
        tmp_path, CONNECTOR + device(role="monitor", install_command=None, apply="confirm")
    )
    assert "devices[0].apply" in message or "apply" in message
    assert "monitor" in message


def test_lan_section_defaults_and_overrides(tmp_path: Path) -> None:
    config = load(tmp_path, CONNECTOR + AGENT)
    assert (config.lan.host, config.lan.http_port, config.lan.mqtt_port) == (
        "0.0.0.0",
        8080,
        1883,
    )
    assert config.lan_data_dir == config.locations.data_dir / "lan"
    config = load(
        tmp_path,
        CONNECTOR
        + '[lan]\nhost = "192.168.1.10"\nhttp_port = 0\nmqtt_port = 18830\ndata_dir = "lan-state"\n'
        + AGENT,
    )
    assert (config.lan.host, config.lan.http_port, config.lan.mqtt_port) == (
        "192.168.1.10",
        0,
        18830,
    )
    assert config.lan_data_dir == tmp_path / "lan-state"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("[lan]\nhttp_port = 70000\n", "lan.http_port"),
        ("[lan]\nmqtt_port = -1\n", "lan.mqtt_port"),
        ('[lan]\nhost = ""\n', "lan.host"),
        ("[lan]\nport = 1\n", "lan.port"),
    ],
)
def test_lan_section_errors_name_the_key(tmp_path: Path, table: str, key: str) -> None:
    assert key in error(tmp_path, CONNECTOR + table + AGENT)


def test_example_config_has_the_lan_section_and_a_confirming_bridge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUMP7_TOKEN", TOKEN)
    monkeypatch.setenv("SENSOR2_TOKEN", TOKEN)
    config = load_config(REPO / "config" / "example.toml")
    assert (config.lan.http_port, config.lan.mqtt_port) == (8080, 1883)
    assert config.device("sensor-1").apply == "confirm"
    assert config.device("pump-7").apply == "auto"
