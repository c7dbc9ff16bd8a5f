"""A `.env` in the working directory cannot redirect credentials or lower safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoice_mcp.api.settings import BASE_URLS, ENV_FILE_VAR, SENSITIVE, SettingsError, load_settings

HOSTILE = """\
AP_CLIENT_ID=dotenv-id
AP_CLIENT_SECRET=dotenv-secret
AP_RATE_LIMIT=2
AP_BASE_URL=https://elsewhere.example
AP_ENVIRONMENT=demo
INVOICE_MCP_CONFIRM=never
INVOICE_MCP_READ_ONLY=0
INVOICE_MCP_REDIS_URL=redis://collector.example:6379/0
INVOICE_MCP_HTTP_TOKEN=attacker-chosen-token-attacker-chosen
INVOICE_MCP_ENV_FILE=/tmp/also-not-trusted.env
INVOICE_MCP_GATEWAY=1
INVOICE_MCP_STATE=postgresql://collector.example/journal
"""

ALL_VARS = (
    "AP_CLIENT_ID",
    "AP_CLIENT_SECRET",
    "AP_RATE_LIMIT",
    "AP_TIMEOUT_S",
    "INVOICE_MCP_READ_ONLY",
    *SENSITIVE,
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ALL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dotenv_in_cwd_supplies_credentials_but_cannot_redirect_or_lower_safety(clean_env: Path) -> None:
    (clean_env / ".env").write_text(HOSTILE)
    s = load_settings()
    assert s.client_id == "dotenv-id" and s.client_secret.get_secret_value() == "dotenv-secret"
    assert s.rate_limit == 2.0  # harmless tuning is read
    assert s.base_url == BASE_URLS["production"] and s.environment == "production"
    assert s.confirm == "auto" and s.redis_url is None and s.http_token is None and not s.read_only
    assert not s.gateway and s.state_url is None
    (notice,) = s.notices
    for var in SENSITIVE | {"INVOICE_MCP_READ_ONLY"}:
        assert var in notice
    assert "--env-file" in notice and "dotenv-secret" not in notice


def test_dotenv_may_turn_read_only_on(clean_env: Path) -> None:
    (clean_env / ".env").write_text("AP_CLIENT_ID=a\nAP_CLIENT_SECRET=b\nINVOICE_MCP_READ_ONLY=1\n")
    s = load_settings()
    assert s.read_only and s.notices == ()


def test_explicit_env_file_is_trusted_and_base_url_announced(clean_env: Path) -> None:
    named = clean_env / "trusted.env"
    named.write_text(HOSTILE.replace("INVOICE_MCP_ENV_FILE=/tmp/also-not-trusted.env\nINVOICE_MCP_GATEWAY=1\n", ""))
    (clean_env / ".env").write_text("AP_CLIENT_ID=ignored-when-a-file-is-named\n")
    s = load_settings(env_file=named)
    assert s.client_id == "dotenv-id"
    assert s.base_url == "https://elsewhere.example" and s.confirm == "never"
    assert s.redis_url is not None and s.http_token is not None
    assert any("AP_BASE_URL=https://elsewhere.example" in n for n in s.notices)


def test_env_file_named_in_environment_and_environment_still_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = clean_env / "named.env"
    named.write_text("AP_CLIENT_ID=file-id\nAP_CLIENT_SECRET=file-secret\nINVOICE_MCP_CONFIRM=always\n")
    monkeypatch.setenv(ENV_FILE_VAR, str(named))
    monkeypatch.setenv("AP_CLIENT_ID", "env-id")
    s = load_settings()
    assert s.client_id == "env-id" and s.client_secret.get_secret_value() == "file-secret" and s.confirm == "always"


def test_missing_named_env_file_is_a_settings_error(clean_env: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(env_file=clean_env / "nope.env")


def test_official_base_urls_need_no_notice() -> None:
    env = {"AP_CLIENT_ID": "a", "AP_CLIENT_SECRET": "b"}
    assert load_settings(env).notices == ()
    assert load_settings({**env, "AP_ENVIRONMENT": "demo"}).notices == ()
    assert load_settings({**env, "AP_BASE_URL": "http://127.0.0.1:9"}).notices


SECRET_VALUE = "sk_live_0123456789abcdef"
INTERPOLATING = """\
AP_CLIENT_ID=dotenv-id
AP_RATE_LIMIT=${AP_CLIENT_SECRET}
AP_TIMEOUT_S=x${AP_CLIENT_SECRET}
INVOICE_MCP_CONFIRM=${AP_CLIENT_SECRET}
INVOICE_MCP_LIST_ROWS=${INVOICE_MCP_HTTP_TOKEN}
"""


@pytest.mark.parametrize("where", ["environment", "dotenv"])
def test_configuration_errors_never_echo_a_secret_value(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """`AP_RATE_LIMIT=${AP_CLIENT_SECRET}` in ./.env: the error names the variable, not the value,
    in the settings error (stderr) and in `check`'s output; other bad values are still shown."""
    from invoice_mcp.faces.check import run_check

    monkeypatch.setenv("AP_CLIENT_SECRET", SECRET_VALUE)
    monkeypatch.setenv("INVOICE_MCP_HTTP_TOKEN", "tok_" + SECRET_VALUE[::-1])
    if where == "dotenv":
        (clean_env / ".env").write_text(INTERPOLATING + "INVOICE_MCP_GATEWAY_IDLE_S=staging\n")
    else:
        monkeypatch.setenv("AP_CLIENT_ID", "id")
        monkeypatch.setenv("AP_RATE_LIMIT", SECRET_VALUE)
        monkeypatch.setenv("INVOICE_MCP_GATEWAY_IDLE_S", "staging")
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert SECRET_VALUE not in text and SECRET_VALUE[::-1] not in text
    assert "AP_RATE_LIMIT" in text and "secret" in text and "'staging'" in text
    import io

    buf = io.StringIO()
    assert run_check(out=buf) == 1
    out = buf.getvalue() + capsys.readouterr().err
    assert "AP_RATE_LIMIT" in out and SECRET_VALUE not in out and SECRET_VALUE[::-1] not in out
