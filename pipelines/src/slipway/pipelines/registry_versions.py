"""Is the registry on the MLflow version this environment runs? Said before a step fails.

A newer MLflow migrates a registry database when it first opens it, and from then on an older
MLflow refuses it ("Detected out-of-date database schema"), deep inside whichever pipeline step
touches it first. Spokes install the hub's tested versions so this does not happen by
accident; when it does (a laptop with another MLflow, a server upgraded on its own) this
module says so up front, with both versions and what to do: `slipway check` reports it, every
command that meets MLflow's error turns it into a `RegistryVersionSkew` (exit 12), and
`slipway train` checks before it starts a step.

Two kinds of registry, two checks:
- a database URI (sqlite, postgresql, mysql): the schema revision alembic recorded, against the
  head revision of the installed MLflow's migrations (read without creating or migrating
  anything);
- an `http(s)://` server: the MLflow version its `/version` endpoint answers, against the
  installed one (major.minor: patch releases share the protocol and the schema).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

__all__ = ["RegistryVersionSkew", "RegistryVersions", "from_mlflow_error", "registry_versions"]

_OUT_OF_DATE = re.compile(
    r"out-of-date database schema \(found version (?P<found>\w+|None), "
    r"but expected (?P<expected>\w+)\)"
)


class RegistryVersionSkew(SlipwayError):
    """The registry was written by another MLflow than the one installed here."""

    exit_code = Exit.REGISTRY_SKEW


@dataclass(frozen=True)
class RegistryVersions:
    """What `slipway check` reports: the client's MLflow and what the registry says."""

    uri: str
    client: str  # the installed MLflow
    registry: str  # the server's MLflow, or the database's schema revision
    problem: str | None  # None when they agree; else what is wrong and what to do

    def raise_for_skew(self) -> None:
        if self.problem:
            raise RegistryVersionSkew(self.problem)


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


_REVISION = re.compile(r"^(down_)?revision\s*=\s*(?:\"(\w+)\"|'(\w+)'|None)", re.M)


def _known_revisions() -> tuple[str, set[str]]:
    """(head, every revision) of the installed MLflow's own migrations, read from its
    migration scripts rather than through alembic: `slipway train` asks before every run, and
    importing mlflow's store would cost the parent process a second."""
    from importlib.util import find_spec

    spec = find_spec("mlflow")
    assert spec is not None and spec.submodule_search_locations, "mlflow is not installed"
    versions = Path(next(iter(spec.submodule_search_locations))) / "store/db_migrations/versions"
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        for down, double, single in _REVISION.findall(script.read_text(encoding="utf-8")):
            if name := double or single:
                (parents if down else revisions).add(name)
    heads = revisions - parents
    if len(heads) != 1:
        raise RegistryVersionSkew(f"MLflow's migrations have {len(heads)} heads: reinstall it")
    return heads.pop(), revisions


def _explain_schema(uri: str, found: str | None, client: str) -> str | None:
    head, known = _known_revisions()
    if found is None or found == head:
        return None  # a new registry (MLflow creates it at the head), or the same version
    if found in known:
        return (
            f"the registry at {uri} has an older schema (revision {found}) than MLflow "
            f"{client}, installed here, expects ({head}). Take a backup, then migrate it with "
            f"`mlflow db upgrade {uri}`; every environment that uses this registry must then "
            f"run MLflow {client} or newer (spokes install the hub's tested versions: "
            "`make setup`)."
        )
    return (
        f"the registry at {uri} was migrated by a newer MLflow than {client}, installed here "
        f"(its schema revision {found} is unknown to {client}, whose newest is {head}). An "
        "older MLflow cannot open it. Run the MLflow that migrated it: spokes install the "
        "hub's tested versions (`make setup` in a spoke; a newer Slipway release if the "
        "registry is meant to stay on the newer MLflow). Never open a shared registry with an "
        "MLflow newer than the team's lock: it migrates the database for everyone."
    )


def _schema_revision(uri: str) -> str | None:
    """The revision alembic recorded in the registry's database; None when it has none yet."""
    if uri.startswith("sqlite:"):
        import sqlite3

        path = uri.split(":///", 1)[-1]
        if not Path(path).exists():
            return None
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            try:
                row = db.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:  # no such table: MLflow has not created it yet
                return None
            return row[0] if row else None
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(
                sqlalchemy.text("SELECT version_num FROM alembic_version")
            ).scalar()
    finally:
        engine.dispose()


def _database(uri: str, client: str) -> RegistryVersions:
    found = _schema_revision(uri)
    return RegistryVersions(
        uri=uri,
        client=client,
        registry=f"schema {found}" if found else "empty (created on first use)",
        problem=_explain_schema(uri, found, client),
    )


def _server(uri: str, client: str, timeout: float) -> RegistryVersions:
    import httpx

    answer = httpx.get(f"{uri.rstrip('/')}/version", timeout=timeout, follow_redirects=False)
    answer.raise_for_status()
    server = answer.text.strip()
    problem = None
    if server.split(".")[:2] != client.split(".")[:2]:
        problem = (
            f"the registry at {uri} runs MLflow {server} and this environment MLflow {client}: "
            "a client and server on different minor versions disagree on the API and a server "
            "upgrade migrates its database for every client. Run the same MLflow on both: "
            "spokes install the hub's tested versions (`make setup`); the platform team moves "
            "the server and the hub's lock together (docs/platform/dependencies.md)."
        )
    return RegistryVersions(uri=uri, client=client, registry=f"MLflow {server}", problem=problem)


def registry_versions(uri: str, *, timeout: float = 5.0) -> RegistryVersions | None:
    """The client's and the registry's versions, or None for a registry with no version to
    compare (a SageMaker managed MLflow ARN, a Databricks workspace)."""
    client = _mlflow_version()
    if uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        return _database(uri, client)
    if uri.startswith(("http://", "https://")):
        return _server(uri, client, timeout)
    return None


def from_mlflow_error(exc: BaseException, uri: str) -> RegistryVersionSkew | None:
    """MLflow's out-of-date-schema error, wherever a command met it, as a RegistryVersionSkew
    naming both versions; None for any other error."""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if match := _OUT_OF_DATE.search(str(current)):
            found = match.group("found")
            problem = _explain_schema(uri, None if found == "None" else found, _mlflow_version())
            return RegistryVersionSkew(problem or str(current))
        current = current.__cause__ or current.__context__
    return None
