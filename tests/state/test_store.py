"""The state store on both engines: URLs, migrations per feature, transactions, locks, secrets."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from invoice_mcp.state import (
    AUTO_ID,
    Dialect,
    Schema,
    SecretBox,
    StateError,
    StateStore,
    Tx,
    default_data_dir,
    digest,
    open_secret_box,
    open_store,
    open_store_async,
    parse_state_url,
    redact_url,
    same_digest,
    step,
)

NOTES_V1 = Schema.of("notes", f"CREATE TABLE notes (id {AUTO_ID}, body TEXT NOT NULL)")
NOTES_V2 = Schema(
    "notes",
    (*NOTES_V1.steps, step("ALTER TABLE notes ADD COLUMN tag TEXT", "CREATE INDEX notes_tag ON notes (tag)")),
)
COUNTER = Schema.of("counter", "CREATE TABLE counter (name TEXT PRIMARY KEY, n BIGINT NOT NULL)")


# --- where the store lives ---------------------------------------------------------------


def test_default_is_a_file_in_the_users_data_folder(tmp_path: Path) -> None:
    loc = parse_state_url(None, {"XDG_DATA_HOME": str(tmp_path), "HOME": "/nowhere"})
    assert loc.dialect is Dialect.SQLITE
    assert loc.path == tmp_path / "invoice-mcp" / "state.db"
    home = {"HOME": "/home/u"}
    assert default_data_dir(home, "linux") == Path("/home/u/.local/share/invoice-mcp")
    assert default_data_dir({**home, "XDG_DATA_HOME": "relative"}, "linux") == Path("/home/u/.local/share/invoice-mcp")
    assert default_data_dir(home, "darwin") == Path("/home/u/Library/Application Support/invoice-mcp")
    assert default_data_dir({**home, "LOCALAPPDATA": "C:/L"}, "win32") == Path("C:/L/invoice-mcp")
    assert default_data_dir(home, "win32") == Path("/home/u/AppData/Local/invoice-mcp")


def test_environment_then_flag(tmp_path: Path) -> None:
    env = {"INVOICE_MCP_STATE": f"sqlite:///{tmp_path}/env.db"}
    assert parse_state_url(None, env).path == tmp_path / "env.db"
    assert parse_state_url(f"sqlite:///{tmp_path}/flag.db", env).path == tmp_path / "flag.db"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///srv/x/state.db", "/srv/x/state.db"),
        ("sqlite:////srv/x/state.db", "/srv/x/state.db"),
        ("/srv/x/state.db", "/srv/x/state.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert parse_state_url(url, {}).path == Path(path)


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_state_url("here.db", {}).path == tmp_path / "here.db"


def test_memory_and_postgres_and_refusals() -> None:
    for url in ("sqlite://", "sqlite://:memory:", "sqlite:///:memory:"):
        loc = parse_state_url(url, {})
        assert (loc.url, loc.path, loc.display) == (":memory:", None, "sqlite://:memory:")
    pg = parse_state_url("postgres://u:hunter2@db.internal:5432/app", {})
    assert pg.dialect is Dialect.POSTGRES and "hunter2" not in pg.display
    assert pg.display == "postgres://u:***@db.internal:5432/app"
    with pytest.raises(StateError, match="no host"):
        parse_state_url("postgresql:///app", {})
    with pytest.raises(StateError, match="three slashes"):
        parse_state_url("sqlite://relative.db", {})
    with pytest.raises(StateError, match="not supported"):
        parse_state_url("mysql://h/db", {})


def test_redact_url() -> None:
    assert redact_url("postgresql://h/db?user=u&password=s3cret") == "postgresql://h/db?user=u&password=***"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql://[::1/db") == "<unparseable URL>"


def test_a_new_database_file_is_owner_only(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/deep/folder/state.db", schemas=[NOTES_V1])
    store.close()
    assert stat.S_IMODE((tmp_path / "deep" / "folder" / "state.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "deep" / "folder").stat().st_mode) == 0o700


def test_an_unusable_place_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match="state store"):
        open_store(f"sqlite:///{tmp_path}/file/state.db")


# --- both engines -------------------------------------------------------------------------


def _add(body: str, tag: str | None = None) -> Callable[[Tx], int]:
    def run(tx: Tx) -> int:
        if tag is None:
            row = tx.fetchone("INSERT INTO notes (body) VALUES (?) RETURNING id", (body,))
        else:
            row = tx.fetchone("INSERT INTO notes (body, tag) VALUES (?, ?) RETURNING id", (body, tag))
        assert row is not None
        return int(row[0])

    return run


def test_migrations_apply_once_and_only_new_steps(state_url: str) -> None:
    store = open_store(state_url, schemas=[NOTES_V1, COUNTER])
    try:
        assert store.transaction_sync(_add("a 50% ? literal")) == 1
        store.ensure_sync(NOTES_V1)  # again: nothing happens
    finally:
        store.close()
    store = open_store(state_url, schemas=[NOTES_V2])  # a later release adds a column
    try:
        assert store.transaction_sync(_add("b", "t")) == 2
        rows = store.transaction_sync(lambda tx: tx.fetchall("SELECT id, body, tag FROM notes ORDER BY id"))
        assert rows == [(1, "a 50% ? literal", None), (2, "b", "t")]
        versions = store.transaction_sync(
            lambda tx: tx.fetchall("SELECT name, version FROM state_schema ORDER BY name")
        )
        assert versions == [("counter", 1), ("notes", 2)]
    finally:
        store.close()
    with pytest.raises(StateError, match="newer than this server knows"):
        open_store(state_url, schemas=[NOTES_V1])


def test_a_failing_transaction_leaves_nothing(state_url: str) -> None:
    store = open_store(state_url, schemas=[NOTES_V1])

    def half_then_fail(tx: Tx) -> None:
        tx.execute("INSERT INTO notes (body) VALUES (?)", ("half",))
        raise LookupError("domain error passes through")

    try:
        with pytest.raises(LookupError):
            store.transaction_sync(half_then_fail)
        assert store.transaction_sync(lambda tx: tx.fetchall("SELECT body FROM notes")) == []
        with pytest.raises(StateError, match="state store") as err:
            store.transaction_sync(lambda tx: tx.execute("INSERT INTO missing_table VALUES (?)", (1,)))
        assert "Traceback" not in str(err.value)
        assert store.transaction_sync(lambda tx: tx.execute("UPDATE notes SET body = ? WHERE id = ?", ("x", 9))) == 0
    finally:
        store.close()


def test_locked_transactions_serialize_across_stores(state_url: str) -> None:
    """Two store objects (as two replicas would) increment one counter from many threads:
    read-then-write under a lock loses no update."""
    stores = [open_store(state_url, schemas=[COUNTER]) for _ in range(2)]
    stores[0].transaction_sync(lambda tx: tx.execute("INSERT INTO counter (name, n) VALUES (?, ?)", ("c", 0)))

    def bump(tx: Tx) -> None:
        tx.lock("counter:c")
        row = tx.fetchone("SELECT n FROM counter WHERE name = ?", ("c",))
        assert row is not None
        tx.execute("UPDATE counter SET n = ? WHERE name = ?", (int(row[0]) + 1, "c"))

    def work(store: StateStore) -> None:
        for _ in range(15):
            store.transaction_sync(bump)

    threads = [threading.Thread(target=work, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert stores[1].transaction_sync(lambda tx: tx.fetchone("SELECT n FROM counter")) == (60,)
    finally:
        for s in stores:
            s.close()


def test_concurrent_first_opens_migrate_once(state_url: str) -> None:
    errors: list[BaseException] = []
    opened: list[StateStore] = []

    def open_one() -> None:
        try:
            opened.append(open_store(state_url, schemas=[NOTES_V2, COUNTER]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert opened[0].transaction_sync(lambda tx: tx.fetchall("SELECT version FROM state_schema ORDER BY name")) == [
        (1,),
        (2,),
    ]
    for s in opened:
        s.close()


@pytest.mark.anyio
async def test_async_twins(state_url: str) -> None:
    store = await open_store_async(state_url, schemas=[NOTES_V1])
    try:
        assert await store.execute("INSERT INTO notes (body) VALUES (?)", ("x",)) == 1
        assert await store.fetchone("SELECT body FROM notes") == ("x",)
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(store.execute, "INSERT INTO notes (body) VALUES (?)", (f"n{i}",))
        assert len(await store.fetchall("SELECT id FROM notes")) == 6
        await store.ensure(COUNTER)
        assert await store.transaction(lambda tx: tx.dialect) in (Dialect.SQLITE, Dialect.POSTGRES)
    finally:
        await store.aclose()


def test_postgres_errors_hide_the_password(postgres_url: str) -> None:
    bad = postgres_url.replace("test@", "test:wrong-password@").rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StateError) as err:
        open_store(bad)
    assert "wrong-password" not in str(err.value) and "***" in str(err.value)


def test_a_closed_postgres_store_refuses(postgres_url: str) -> None:
    store = open_store(postgres_url)
    store.close()
    with pytest.raises(StateError, match="closed"):
        store.transaction_sync(lambda tx: tx.fetchone("SELECT 1"))


# --- secrets at rest -------------------------------------------------------------------------


def test_secret_box_round_trip_and_rotation() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token = SecretBox([old]).encrypt("client-secret-value")
    assert "client-secret-value" not in token
    rotated = SecretBox([new, old])
    assert rotated.decrypt(token) == "client-secret-value"
    with pytest.raises(StateError, match="cannot be decrypted"):
        SecretBox([new]).decrypt(token)
    with pytest.raises(StateError, match="not a Fernet key"):
        SecretBox(["short"])
    with pytest.raises(StateError, match="no encryption key"):
        SecretBox([])


def test_key_from_the_environment_first(tmp_path: Path) -> None:
    key = SecretBox.generate_key()
    loc = parse_state_url(f"sqlite:///{tmp_path}/state.db", {})
    box = open_secret_box(loc, {"INVOICE_MCP_STATE_KEY": f" {key} , "})
    assert SecretBox([key]).decrypt(box.encrypt("x")) == "x"
    assert not (tmp_path / "state.key").exists()


def test_key_file_created_owner_only_and_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loc = parse_state_url(f"sqlite:///{tmp_path}/state.db", {})
    token = open_secret_box(loc, {}).encrypt("api-key")
    key_file = tmp_path / "state.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert open_secret_box(loc, {}).decrypt(token) == "api-key"  # a restart reads the same key
    key_file.chmod(0o644)
    with caplog.at_level("WARNING"):
        open_secret_box(loc, {})
    assert "readable by others" in caplog.text


def test_postgres_needs_the_key_in_the_environment() -> None:
    loc = parse_state_url("postgresql://u@h/db", {})
    with pytest.raises(StateError, match="INVOICE_MCP_STATE_KEY"):
        open_secret_box(loc, {})
    memory = open_secret_box(parse_state_url("sqlite://", {}), {})
    assert memory.decrypt(memory.encrypt("x")) == "x"


def test_digests() -> None:
    assert digest("tok") == digest("tok") != digest("tok2")
    assert "tok" not in digest("tok") and len(digest("tok")) == 64
    assert same_digest("tok", digest("tok")) and not same_digest("tok", digest("x"))
