"""Secrets at rest: API keys encrypted (Fernet), tokens kept only as digests.

The key comes from ``INVOICE_MCP_STATE_KEY`` (one or more Fernet keys, comma-separated: the
first encrypts, all decrypt, so a key can be rotated), else from a key file next to the
SQLite database, created owner-only (0600) on first use. Replicas on one Postgres share
nothing on disk, so they must be given the key in the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from invoice_mcp.state.location import StateError, StateLocation

log = logging.getLogger(__name__)

KEY_ENV = "INVOICE_MCP_STATE_KEY"
KEY_FILE_SUFFIX = ".key"


def digest(secret: str) -> str:
    """What is stored instead of a token: its SHA-256, hex. Compare with :func:`same_digest`."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, stored: str) -> bool:
    return hmac.compare_digest(digest(secret), stored)


class SecretBox:
    """Encrypts short secrets (API client secrets, refresh material) for the state store."""

    def __init__(self, keys: Sequence[bytes | str]) -> None:
        if not keys:
            raise StateError(f"no encryption key: set {KEY_ENV}")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError):
            raise StateError(
                f"{KEY_ENV} (or the key file) is not a Fernet key: 32 url-safe base64-encoded bytes, "
                f'e.g. python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise StateError(
                f"a stored secret cannot be decrypted: {KEY_ENV} or the key file changed since it was written"
            ) from None


def key_file_for(location: StateLocation) -> Path | None:
    """``state.db`` → ``state.key`` in the same folder; None when there is no database file."""
    return location.path.with_suffix(KEY_FILE_SUFFIX) if location.path is not None else None


def _read_or_create(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("state key file %s is readable by others: chmod 600 it", path)
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    log.info("state store: created encryption key file %s", path)
    return key


def open_secret_box(location: StateLocation, env: Mapping[str, str] | None = None) -> SecretBox:
    """The box for this store: the environment's keys, else the key file beside the database,
    else (in-memory database only) a key that lives as long as the process."""
    env = os.environ if env is None else env
    raw = env.get(KEY_ENV, "").strip()
    if raw:
        return SecretBox([k.strip() for k in raw.split(",") if k.strip()])
    path = key_file_for(location)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return SecretBox([_read_or_create(path)])
    if location.url == ":memory:":
        return SecretBox([Fernet.generate_key()])
    raise StateError(
        f"{location.display} keeps encrypted secrets: set {KEY_ENV} to the same Fernet key on every replica"
    )
