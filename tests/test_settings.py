"""Settings: environment and .env, one clear message naming each bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoice_mcp.api.settings import BASE_URLS, SettingsError, load_settings

GOOD = {"AP_CLIENT_ID": "cid", "AP_CLIENT_SECRET": "s3cret-value"}


def test_defaults_map_to_production() -> None:
    s = load_settings(GOOD)
    assert s.base_url == BASE_URLS["production"] and s.rate_limit == 5.0 and s.confirm == "auto"
    assert s.list_rows == "both" and load_settings({**GOOD, "INVOICE_MCP_LIST_ROWS": " Text "}).list_rows == "text"


def test_demo_environment_and_base_url_override() -> None:
    assert load_settings({**GOOD, "AP_ENVIRONMENT": "demo"}).base_url == BASE_URLS["demo"]
    s = load_settings({**GOOD, "AP_ENVIRONMENT": "demo", "AP_BASE_URL": "http://127.0.0.1:9/"})
    assert s.base_url == "http://127.0.0.1:9"


def test_every_bad_variable_named_in_one_message() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(
            {
                "AP_ENVIRONMENT": "staging",
                "AP_TIMEOUT_S": "soon",
                "AP_RATE_LIMIT": "-1",
                "INVOICE_MCP_CONFIRM": "maybe",
                "AP_BASE_URL": "ftp://x",
                "INVOICE_MCP_LIST_ROWS": "everywhere",
            }
        )
    msg = str(err.value)
    for var in (
        "AP_CLIENT_ID",
        "AP_CLIENT_SECRET",
        "AP_ENVIRONMENT",
        "AP_TIMEOUT_S",
        "AP_RATE_LIMIT",
        "INVOICE_MCP_CONFIRM",
        "AP_BASE_URL",
        "INVOICE_MCP_LIST_ROWS",
    ):
        assert var in msg


def test_secret_hidden_in_repr_and_errors() -> None:
    s = load_settings(GOOD)
    assert "s3cret-value" not in repr(s) and "s3cret-value" not in str(s)
    with pytest.raises(SettingsError) as err:
        load_settings({**GOOD, "AP_RATE_LIMIT": "x"})
    assert "s3cret-value" not in str(err.value)


def test_dotenv_read_and_real_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("AP_CLIENT_ID=from-dotenv\nAP_CLIENT_SECRET=dotenv-secret\nAP_RATE_LIMIT=2\n")
    monkeypatch.setenv("AP_CLIENT_ID", "from-env")
    monkeypatch.delenv("AP_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("AP_RATE_LIMIT", raising=False)
    s = load_settings(dotenv_path=env)
    assert s.client_id == "from-env"
    assert s.client_secret.get_secret_value() == "dotenv-secret"
    assert s.rate_limit == 2.0
