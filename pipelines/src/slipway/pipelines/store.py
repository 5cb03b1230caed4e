"""Where a team's shared state lives: the audit trail and the open rollout, next to the registry.

With the embedded registry (MLflow on sqlite under .slipway/) the team state stays in files
beside it. When the registry is a server, every machine that acts for the team (a laptop, CI,
a pipeline pod) must append to one audit chain and agree on one open rollout, so that state
lives in PostgreSQL:

- ``SLIPWAY_STATE_URL`` names it (``postgresql://user@host:5432/db``); ``local`` forces the
  files under .slipway/ (one machine only, e.g. a throwaway experiment).
- Unset, it defaults to ``MLFLOW_TRACKING_URI`` when that is itself a ``postgresql://`` URI
  (the MLflow backend database: Slipway's tables are prefixed ``slipway_`` beside MLflow's).
- An ``http(s)://`` or SageMaker ``arn:`` registry does not say where its database is: the
  team sets ``SLIPWAY_STATE_URL``; until it does, the files are kept and a
  :class:`~slipway.pipelines.errors.SlipwayWarning` says so (shown once per process, by the
  default warning filter).

Every call to the database retries a lost connection with backoff (the server restarting,
a failover) and then raises :class:`StoreUnreachable` (exit code 8, UNREACHABLE).
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from slipway.pipelines.errors import SlipwayError, SlipwayWarning
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.settings import Settings, restored_environment

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

STATE_URL_ENV = "SLIPWAY_STATE_URL"
LOCAL = "local"
_POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")

# Lost connections are retried this many times, waiting BACKOFF_S * 2**attempt (capped).
RETRIES_ENV = "SLIPWAY_STATE_RETRIES"
DEFAULT_RETRIES = 6
BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0

T = TypeVar("T")


class StoreUnreachable(SlipwayError, ConnectionError):
    """The shared state database could not be reached after every retry."""

    exit_code = Exit.UNREACHABLE


class StoreConfigError(SlipwayError, ValueError):
    """SLIPWAY_STATE_URL is not a database Slipway can use."""

    exit_code = Exit.CONFIG


def is_postgres(uri: str) -> bool:
    return uri.startswith(_POSTGRES_SCHEMES)


def state_url() -> str | None:
    """The shared store's URL, or None for the files under .slipway/ (see module doc)."""
    settings = Settings.from_env()
    explicit = settings.state_url or ""
    if explicit:
        if explicit == LOCAL:
            return None
        if not is_postgres(explicit):
            raise StoreConfigError(
                f"{STATE_URL_ENV}={explicit!r} is not a postgresql:// URL: point it at the "
                f"team's PostgreSQL (e.g. postgresql://slipway@db:5432/mlflow) or set it to "
                f"{LOCAL!r} to keep the state in .slipway/ on this machine"
            )
        return explicit
    tracking = settings.mlflow_tracking_uri or ""
    if is_postgres(tracking):
        return tracking
    if tracking and not tracking.startswith(("sqlite:", "file:", "/")):
        warnings.warn(
            f"the registry is a server ({tracking.split('?')[0]}) but "
            f"{STATE_URL_ENV} is not set: the audit trail and rollout state stay in .slipway/ "
            f"on this machine only. Set {STATE_URL_ENV}=postgresql://... (the team's state "
            f"database) so every machine shares them, or {STATE_URL_ENV}={LOCAL} to silence "
            "this.",
            SlipwayWarning,
            stacklevel=1,  # the place is this line, whoever asks: once per process
        )
    return None


def _driver_url(url: str) -> str:
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@functools.cache
def engine(url: str) -> Engine:
    """One pooled engine per URL and process (pre-ping drops connections a restart killed)."""
    from sqlalchemy import create_engine

    return create_engine(
        _driver_url(url),
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args={"connect_timeout": 5},
    )


def retries() -> int:
    """$SLIPWAY_STATE_RETRIES, else DEFAULT_RETRIES (a bad value is a SettingError now, no
    longer the default in silence)."""
    configured = Settings.from_env().state_retries
    return DEFAULT_RETRIES if configured is None else configured


def with_retry(url: str, what: str, action: Callable[[Connection], T]) -> T:
    """Run `action` in one transaction; retry lost connections with backoff, then give up.

    `action` must be safe to run again from the start: its transaction either committed
    whole or not at all (a connection lost during COMMIT is the one ambiguous case, and the
    callers' unique constraints turn a repeated insert into a conflict they can resolve).
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

    attempts = retries() + 1
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            with engine(url).begin() as conn:
                return action(conn)
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not (
                isinstance(exc, OperationalError) or exc.connection_invalidated
            ):
                raise
            last = exc
            engine(url).dispose()
            if attempt + 1 < attempts:
                time.sleep(min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt))
    raise StoreUnreachable(
        f"the team's state database ({redacted(url)}) could not be reached to {what} after "
        f"{attempts} attempt(s): {str(last).splitlines()[0] if last else 'no answer'}. Nothing "
        "was half written; check the database and run the command again."
    )


def redacted(url: str) -> str:
    """The URL without a password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(_driver_url(url)).render_as_string(hide_password=True)
    except Exception:  # a message must never fail on a bad URL
        return "<unparseable URL>"


_redacted = redacted  # its private name until 0.2.0, which other modules imported

_schema_ready: set[tuple[str, str]] = set()


def ensure_schema(url: str, name: str, statements: tuple[str, ...]) -> None:
    """Create tables once per process; an advisory lock keeps concurrent creators apart
    (CREATE TABLE IF NOT EXISTS alone races in PostgreSQL's catalog)."""
    if (url, name) in _schema_ready:
        return
    from sqlalchemy import text

    def create(conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": f"slipway:{name}"})
        for statement in statements:
            conn.execute(text(statement))

    with_retry(url, f"create the {name} tables", create)
    _schema_ready.add((url, name))


@contextmanager
def no_retries() -> Iterator[None]:
    """For tests and benchmarks: fail at once instead of backing off."""
    with restored_environment((RETRIES_ENV,)):
        os.environ[RETRIES_ENV] = "0"
        yield


def spoke_key(root: Path) -> str:
    """Which spoke's rows a shared table holds for `root`: the registered model's name
    (slipway.toml's project.slug), the same key the registry uses."""
    import tomllib

    path = root / "slipway.toml"
    try:
        slug = tomllib.loads(path.read_text(encoding="utf-8"))["project"]["slug"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise StoreConfigError(
            f"{path} does not name the spoke (project.slug), so its rows in the shared state "
            f"cannot be found: {exc}"
        ) from exc
    return str(slug)
