"""Start-up of OAuth mode from the command line (the state store, the key, the public URL),
and the operator's ``invoice-mcp grants list|revoke``."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from typing import TextIO

import anyio

from invoice_mcp.api.settings import Settings
from invoice_mcp.faces.oauth.app import OAuthSetup
from invoice_mcp.faces.oauth.config import OAuthConfigError, load_oauth_config
from invoice_mcp.state import StateError, StateStore, open_store
from invoice_mcp.state.grants import SCHEMA, GrantRecord, SQLGrantStore
from invoice_mcp.state.secrets import key_file_for


class OAuthStartError(Exception):
    """OAuth mode cannot start; the message names the setting to fix."""


def _open_state(state_url: str | None) -> StateStore:
    try:
        return open_store(state_url, schemas=[SCHEMA])
    except StateError as exc:
        raise OAuthStartError(str(exc)) from None


def open_oauth(settings: Settings, *, public_url: str | None, state_url: str | None) -> OAuthSetup:
    state = _open_state(state_url)
    try:
        config = load_oauth_config(os.environ, public_url=public_url, key_file=key_file_for(state.location))
    except OAuthConfigError as exc:
        state.close()
        raise OAuthStartError(str(exc)) from None
    return OAuthSetup(settings, config, SQLGrantStore(state))


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grant_json(g: GrantRecord) -> dict[str, object]:
    """What an operator may see of a grant: never the API secret (nor its ciphertext)."""
    return {
        "id": g.grant_id,
        "status": "active" if g.active else "revoked",
        "scopes": g.scopes.split(),
        "client_id": g.client_id,
        "client_name": g.client_name,
        "ap_client_id": g.ap_client_id,
        "environment": g.environment,
        "created_at": _when(g.created_at),
        "revoked_at": _when(g.revoked_at) if g.revoked_at is not None else None,
        "revoked_why": g.revoked_why or None,
    }


def _clean(text: str, limit: int = 60) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def run_grants(action: str, state_url: str | None, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        state = _open_state(state_url)
    except OAuthStartError as exc:
        print(f"invoice-mcp: {exc}", file=sys.stderr)
        return 2
    store = SQLGrantStore(state)
    try:
        if action == "list":
            grants = anyio.run(store.list_grants)
            if getattr(args, "json", False):
                print(json.dumps([grant_json(g) for g in grants], indent=2), file=out)
                return 0
            for g in grants:
                status = "active" if g.active else f"revoked {_when(g.revoked_at)} ({_clean(g.revoked_why, 40)})"
                print(
                    f"{g.grant_id}  {status}  {g.scopes}  {g.environment}  {_clean(g.ap_client_id, 40)}  "
                    f"client={_clean(g.client_name)}  created {_when(g.created_at)}",
                    file=out,
                )
            return 0
        grant_id = args.grant_id.strip()

        async def revoke() -> bool:
            return await store.revoke_grant(grant_id, time.time(), "revoked by the operator")

        if anyio.run(revoke):
            print(f"revoked {grant_id}: its tokens stop working on every replica within seconds", file=out)
            return 0
        print(f"invoice-mcp: no active grant {_clean(grant_id)!r} (see `invoice-mcp grants list`)", file=sys.stderr)
        return 1
    except StateError as exc:
        print(f"invoice-mcp: {exc}", file=sys.stderr)
        return 2
    finally:
        state.close()
