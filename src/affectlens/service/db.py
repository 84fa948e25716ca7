"""The service database: its tables (SQLAlchemy Core) and how an engine is made from a URL.

Any SQLAlchemy URL works; SQLite is the default (embedded, no set-up) and is opened in WAL mode
with a 30 s busy timeout. PostgreSQL needs a driver: ``pip install 'affectlens[postgres]'`` and a
``postgresql+psycopg://user:password@host/dbname`` URL.

The schema is versioned with Alembic (``migrations/``): :func:`migrate` creates or upgrades a
database in place. Tables: ``jobs`` (one row per video job), ``audit`` (who did what, under which consent) and
``rate_hits`` (requests per API key per one-minute window, shared by every server process that
uses the database).

Example:
    >>> url = database_url("data/affectlens.db")          # a plain path means SQLite
    >>> url.render_as_string()
    'sqlite:///data/affectlens.db'
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Double, Index, Integer, MetaData, Table, Text,
                        create_engine, event)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("progress", Double, nullable=False, server_default="0"),
    Column("eta_s", Double),
    Column("frames", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", Double, nullable=False),          # seconds since the epoch, like every *_at
    Column("updated_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("expires_at", Double),
    Column("consent", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("retain", Boolean(create_constraint=False), nullable=False, server_default="0"),
    Column("media_path", Text),
    Column("out_dir", Text, nullable=False),
    Column("options", Text, nullable=False, server_default="{}"),  # JSON
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("worker_pid", Integer),
    Column("owner", Text),          # the server instance running the job (while running)
    Column("lease_token", Text),    # changes at every claim: only its holder may write progress/outcome
    Column("lease_until", Double),  # epoch s; the owner renews it; after it, any server may re-run the job
    CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="jobs_state_check"),
    Index("jobs_state", "state", "created_at"),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("consent", Text),
    Column("job_id", Text),
    Column("detail", Text),  # JSON
    sqlite_autoincrement=True,
)

rate_hits = Table(
    "rate_hits", metadata,
    Column("key_id", Text, primary_key=True),
    Column("window_index", BigInteger, primary_key=True),  # floor(epoch seconds / window_s)
    Column("hits", Integer, nullable=False),
)

#: Environment variable through which the server hands a URL with a password to its workers
#: (command lines show in process listings; environments do not).
DATABASE_URL_ENV = "AFFECTLENS_DATABASE_URL"


def mask_url(url: str | URL) -> str:
    """A URL fit for logs and error messages: the password, if any, replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def database_url(path_or_url: str | os.PathLike, absolute: bool = False) -> URL:
    """A SQLAlchemy URL from a URL string or a plain SQLite file path.

    Args:
        path_or_url: ``sqlite:///PATH``, any other SQLAlchemy URL, or a file path (SQLite).
        absolute: make a SQLite file path absolute (workers change their working directory).

    Raises:
        ValueError: a malformed URL (the message shows it with its password masked).
    """
    text = os.fspath(path_or_url)
    if "://" not in text:
        url = URL.create("sqlite", database=str(Path(text)))
    else:
        try:
            url = make_url(text)
        except ArgumentError:
            raise ValueError(f"database_url {mask_url(text)!r} is not a valid SQLAlchemy URL; expected e.g. "
                             "'sqlite:///PATH' or 'postgresql+psycopg://USER:PASSWORD@HOST/DBNAME'") from None
    if (absolute and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:"
            and not url.database.startswith("file:")):
        url = url.set(database=os.path.abspath(url.database))
    return url


def check_driver(url: URL) -> None:
    """Check that SQLAlchemy knows the URL's dialect and that its driver is installed (no connection).

    Raises:
        ValueError: unknown dialect or missing driver, naming the (masked) URL and the fix.
    """
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"database_url {mask_url(url)!r}: SQLAlchemy has no dialect {url.drivername!r}; expected "
                         "e.g. 'sqlite:///PATH' or 'postgresql+psycopg://USER:PASSWORD@HOST/DBNAME'") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = ("install the PostgreSQL driver with pip install 'affectlens[postgres]' and write the URL as "
                "'postgresql+psycopg://...'" if url.get_backend_name() == "postgresql"
                else f"install the Python driver for {url.drivername!r}")
        raise ValueError(f"database_url {mask_url(url)!r}: its driver is not installed ({exc}); {hint}") from None


def _sqlite_pragmas(dbapi_conn, _record, busy_timeout_s: float = 30.0) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below starts transactions
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of the process
    cur.close()


def _sqlite_begin(conn) -> None:
    # Writers take the write lock when they begin: a deferred transaction that reads, then writes
    # after another connection committed, fails at once with SQLITE_BUSY (no busy wait).
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


def make_engine(url: URL, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for writes
    (connections with the execution option ``write=True``). The SQLite file's folder is created.
    ``busy_timeout_s`` bounds how long a statement waits for a lock (SQLite's busy timeout,
    PostgreSQL's ``lock_timeout``) before it fails.

    Raises:
        ValueError: unknown dialect or missing driver (see :func:`check_driver`).
    """
    check_driver(url)
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, future=True, connect_args={
            "connect_timeout": max(1, int(busy_timeout_s)), "options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"})
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, future=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})
    event.listen(engine, "connect", lambda conn, rec: _sqlite_pragmas(conn, rec, busy_timeout_s))
    event.listen(engine, "begin", _sqlite_begin)
    return engine


#: Alembic revision of the schema above (``migrations/versions``).
SCHEMA_REVISION = "0002"


def migrate(engine: Engine) -> str:
    """Bring the database to :data:`SCHEMA_REVISION` with Alembic: create a new one, or upgrade an
    existing one in place (jobs, audit and rate limits are kept). A database made before migrations
    existed (tables but no ``alembic_version``) is taken to be revision ``0001``.

    Returns:
        the revision the database was at before (``"none"`` for a new one).
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent / "migrations"))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current == SCHEMA_REVISION:
            return current
        legacy = current is None and inspect(conn).has_table("jobs")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        if legacy:
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")
    return current or ("0001" if legacy else "none")


@contextmanager
def transaction(engine: Engine, write: bool = False):
    """One transaction on ``engine``: yields a SQLAlchemy Connection, commits on success, rolls back
    on any exception. ``write=True`` takes SQLite's write lock at once (``BEGIN IMMEDIATE``)."""
    with engine.connect() as conn:
        if write:
            conn.execution_options(write=True)
        with conn.begin():
            yield conn
