"""Versioned SQL migrations: discover the bundled files, apply the pending ones, report status.

`migrate` runs everything pending in ONE transaction under an advisory lock, so two workers
starting at once cannot both apply a file, and a failing file leaves the schema as it was. The
`evalmon_migrations` table (in the target schema) records what was applied and each file's
checksum.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

import psycopg
from psycopg import sql

from shared.database.connection import connect, schema_name
from shared.settings import Settings

MIGRATIONS_TABLE = "evalmon_migrations"
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# pg_advisory_xact_lock key: any constant shared by every evalmon process ("evalmon" in ASCII).
_LOCK_KEY = 0x65766A6D6F6E

_CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

APPLIED_QUERY = f"SELECT version, name, checksum, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version"
TABLE_EXISTS_QUERY = f"SELECT to_regclass('{MIGRATIONS_TABLE}') IS NOT NULL"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class MigrationStatus:
    migration: Migration
    applied_at: datetime | None
    changed_since_applied: bool = False

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def available() -> list[Migration]:
    """The bundled migration files, in version order."""
    found: list[Migration] = []
    for entry in resources.files("shared.database.migrations").iterdir():
        match = _FILE_PATTERN.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migration files share a version: {versions}")
    return found


def pending(applied_versions: set[int]) -> list[Migration]:
    return [m for m in available() if m.version not in applied_versions]


def apply_pending(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> list[Migration]:
    """Apply every pending migration in one transaction; return what was applied (maybe nothing)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute("SELECT set_config('search_path', %s, true)", [f'"{schema}"'])
        conn.execute(_CREATE_TABLE)
        applied = {int(str(row[0])) for row in conn.execute(APPLIED_QUERY).fetchall()}
        todo = pending(applied)
        for migration in todo:
            conn.execute(migration.sql.encode("utf-8"))  # no parameters: the file may hold many statements
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
                [migration.version, migration.name, migration.checksum],
            )
    return todo


def read_status(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> list[MigrationStatus]:
    """Every bundled migration with when it was applied (None: pending), read-only."""
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', %s, true)", [f'"{schema}"'])
        row = conn.execute(TABLE_EXISTS_QUERY).fetchone()
        rows = conn.execute(APPLIED_QUERY).fetchall() if row and row[0] else []
    applied = {int(str(r[0])): (str(r[2]), r[3]) for r in rows}
    out: list[MigrationStatus] = []
    for migration in available():
        checksum, applied_at = applied.get(migration.version, (None, None))
        out.append(
            MigrationStatus(
                migration,
                applied_at if isinstance(applied_at, datetime) else None,
                changed_since_applied=checksum is not None and checksum != migration.checksum,
            )
        )
    return out


async def pending_async(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> list[Migration]:
    """Pending migrations seen from an async connection whose search_path is already set."""
    cur = await conn.execute(TABLE_EXISTS_QUERY)
    row = await cur.fetchone()
    if not (row and row[0]):
        return available()
    cur = await conn.execute(APPLIED_QUERY)
    return pending({int(str(r[0])) for r in await cur.fetchall()})


def migrate(settings: Settings) -> list[Migration]:
    """Connect with `settings` and apply pending migrations to the configured schema."""
    schema = schema_name(settings)
    with connect(settings) as conn:
        return apply_pending(conn, schema)


def status(settings: Settings) -> list[MigrationStatus]:
    schema = schema_name(settings)
    with connect(settings) as conn:
        return read_status(conn, schema)
