"""Connections to the team's Postgres/Neon from `DATABASE_URL`, without ever showing the URL.

The URL goes to libpq as given, so every option it carries (Neon's `sslmode=require`,
`channel_binding`, `options=endpoint%3D...`, `connect_timeout`, ...) is honoured. SQLAlchemy-style
schemes (`postgresql+psycopg://`) are accepted too, because teams paste the URL their other
tools use.

The schema is chosen per transaction with `set_config('search_path', ..., true)` rather than a
session `SET` or a startup `options` parameter: both of those are lost or refused behind a
transaction-mode pooler such as Neon's, while a transaction-local setting always holds.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared.errors import ConfigError
from shared.settings import Settings

SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_URL_PATTERN = re.compile(r"postgres(?:ql)?(?:\+\w+)?://\S+", re.IGNORECASE)
_PASSWORD_PATTERN = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+\w+://", re.IGNORECASE)

MISSING_URL = "is not set; export it (e.g. postgresql://user@host:5432/db?sslmode=require) or put it in the repo .env"


def database_url(settings: Settings) -> str:
    """The libpq connection string, or a ConfigError saying how to provide one."""
    secret = settings.database_url
    url = secret.get_secret_value().strip() if secret is not None else ""
    if not url:
        raise ConfigError(MISSING_URL, field="DATABASE_URL")
    return _DRIVER_SUFFIX.sub(r"\1://", url)


def schema_name(settings: Settings) -> str:
    """The schema holding evalmon's tables (`EVALMON_DB_SCHEMA`, default `public`)."""
    schema = settings.evalmon_db_schema.strip()
    if not SCHEMA_PATTERN.match(schema):
        raise ConfigError(
            f"'{schema}' is not a plain lower-case identifier (letters, digits, _)", field="EVALMON_DB_SCHEMA"
        )
    return schema


def redact(text: str, settings: Settings | None = None) -> str:
    """Remove the URL, any URL-shaped string and any `password=` value from a message."""
    if settings is not None and settings.database_url is not None:
        secret = settings.database_url.get_secret_value()
        if secret:
            text = text.replace(secret, "<DATABASE_URL>")
    text = _URL_PATTERN.sub("<DATABASE_URL>", text)
    return _PASSWORD_PATTERN.sub(r"\1***", text)


def describe_error(exc: BaseException, settings: Settings | None = None) -> str:
    """A one-line, redacted description of a database error for logs and reports."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {redact(message, settings)}"


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: lost connections, pool timeouts, serialization failures, deadlocks."""
    from psycopg import errors
    from psycopg_pool import PoolTimeout

    return (
        isinstance(
            exc,
            psycopg.OperationalError | PoolTimeout | errors.SerializationFailure | errors.DeadlockDetected,
        )
        and not isinstance(exc, errors.InsufficientPrivilege | errors.InvalidPassword | errors.ProgramLimitExceeded)
        and not is_credential_failure(exc)
    )


def is_row_error(exc: BaseException) -> bool:
    """Postgres (or the driver) refused a value of some row, not the connection or the schema.

    Data errors (numeric out of range, bad encoding), constraint violations, a key too large for its
    index, and values psycopg cannot dump: publishing the other rows alone would succeed.
    """
    from psycopg import errors

    if isinstance(exc, errors.UniqueViolation):  # a concurrent writer's key: retried, not a bad row
        return False
    return isinstance(
        exc,
        psycopg.DataError
        | psycopg.IntegrityError
        | errors.ProgramLimitExceeded
        | ValueError
        | TypeError
        | OverflowError,
    )


# libpq reports connection-time failures without a SQLSTATE; these say the URL's role, password or
# database is wrong (a config error, exit 2), not that the server is down (retried, then exit 1).
_CREDENTIAL_FAILURE = re.compile(
    r'password authentication failed|role ".*" does not exist|database ".*" does not exist'
    r"|no pg_hba\.conf entry|pg_hba\.conf rejects|no password supplied",
)


def is_credential_failure(exc: BaseException) -> bool:
    """True when Postgres refused the connection because of what DATABASE_URL says."""
    from psycopg import errors

    if isinstance(exc, errors.InvalidPassword | errors.InvalidAuthorizationSpecification):
        return True
    return isinstance(exc, psycopg.OperationalError) and bool(_CREDENTIAL_FAILURE.search(str(exc)))


def _conninfo_kwargs() -> dict[str, object]:
    # Fail fast when the host is unreachable rather than hanging for libpq's default (forever).
    return {"connect_timeout": 10, "application_name": "evalmon"}


def _with_defaults(url: str) -> dict[str, object]:
    """Defaults for options the URL does not set itself (the URL always wins)."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url)
    return {k: v for k, v in _conninfo_kwargs().items() if k not in given}


def make_pool(settings: Settings, *, min_size: int = 1, max_size: int = 4) -> AsyncConnectionPool:
    """An unopened async pool; open it inside the running event loop (`await pool.open()`)."""
    url = database_url(settings)
    return AsyncConnectionPool(
        url,
        kwargs=_with_defaults(url),
        min_size=min_size,
        max_size=max_size,
        open=False,
        name="evalmon",
        timeout=30.0,
    )


async def open_pool(
    settings: Settings, *, min_size: int = 1, max_size: int = 4, attempts: int = 3
) -> AsyncConnectionPool:
    """An open pool; SinkError with the (redacted) reason the server cannot be reached, or
    ConfigError when it refuses the URL's credentials or database (not retried).

    One plain connection is tried first (with retries for transient failures) so an unreachable
    host fails within seconds with libpq's own reason, instead of the pool's generic timeout.
    """
    from shared.errors import SinkError
    from shared.retry import async_retrying

    url = database_url(settings)
    try:
        async for attempt in async_retrying(attempts, initial=0.5, maximum=5.0, retry_on=is_transient):
            with attempt:
                probe = await psycopg.AsyncConnection.connect(url, **_with_defaults(url))  # type: ignore[arg-type]
                await probe.close()
        pool = make_pool(settings, min_size=min_size, max_size=max_size)
        await pool.open(wait=True, timeout=30.0)
    except psycopg.Error as exc:
        if is_credential_failure(exc):
            raise ConfigError(
                f"Postgres refused the connection ({describe_error(exc, settings)}): check DATABASE_URL",
                field="DATABASE_URL",
            ) from None
        raise SinkError(f"cannot reach Postgres: {describe_error(exc, settings)}") from None
    except Exception as exc:
        raise SinkError(f"cannot open a Postgres pool: {describe_error(exc, settings)}") from None
    return pool


@asynccontextmanager
async def transaction(
    pool: AsyncConnectionPool, schema: str, **local: str
) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """One transaction on a pooled connection, with evalmon's schema first on the search path.

    `local` adds transaction-local settings (e.g. random_page_cost="1.1"), set in the same
    round trip as the search path.
    """
    names = ["search_path", *local]
    values = [quote_ident(schema), *local.values()]
    query = "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in names)
    params = [v for pair in zip(names, values, strict=True) for v in pair]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(query.encode(), params)
        yield conn


def connect(settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    """A plain synchronous connection (CLI, read helpers, notebooks)."""
    url = database_url(settings)
    return psycopg.connect(url, **_with_defaults(url))  # type: ignore[arg-type]


@contextmanager
def sync_transaction(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The synchronous twin of `transaction` on an open connection."""
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', %s, true)", [quote_ident(schema)])
        yield conn


def quote_ident(schema: str) -> str:
    """A search_path entry for an identifier already checked against SCHEMA_PATTERN."""
    if not SCHEMA_PATTERN.match(schema):
        raise ConfigError(f"invalid schema name '{schema}'", field="EVALMON_DB_SCHEMA")
    return f'"{schema}"'
