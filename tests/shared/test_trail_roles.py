"""The shared trail with real PostgreSQL roles: the writer cannot rewrite, the owner is caught.

Each test makes its own database, an owner role and two spokes' app roles, and drops them
after. The attacks are the 2026-12-07 review's, run as the role `slipway` connects with:
ALTER TABLE ... DISABLE TRIGGER, DELETE, UPDATE of the head, a row inserted past the head,
another team's trail. Then the same rewrite done as the owner, caught by the registry's
checkpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import LiteralString

import psycopg
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from psycopg import sql

from slipway.pipelines import registry, store
from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit, trail_roles
from slipway.pipelines.governance.approvals import Decision, record_decision

from .test_audit_shared import _valid_toml


@dataclass
class Roles:
    db: str
    admin: str  # the database, as the cluster's superuser
    owner: str  # as the trail's owner role
    app: str  # as the spoke's app role (what `slipway` uses)
    other_app: str  # another team's app role


def _url(admin: str, user: str, db: str) -> str:
    base = admin.rsplit("/", 1)[0].split("@", 1)[1]
    return f"postgresql://{user}@{base}/{db}"


@pytest.fixture
def roles(postgres_admin: str) -> Iterator[Roles]:
    tag = uuid.uuid4().hex[:8]
    db, owner, app, other = (f"slipway_t_{tag}", f"trail_owner_{tag}", f"app_{tag}", f"app2_{tag}")
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        for role in (owner, app, other):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    admin_db = postgres_admin.rsplit("/", 1)[0] + f"/{db}"
    with psycopg.connect(admin_db, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
    made = Roles(
        db,
        admin_db,
        _url(postgres_admin, owner, db),
        _url(postgres_admin, app, db),
        _url(postgres_admin, other, db),
    )
    try:
        yield made
    finally:
        for url in (made.admin, made.owner, made.app, made.other_app):
            store.engine(url).dispose()
            for key in [k for k in store._schema_ready if k[0] == url]:
                store._schema_ready.discard(key)
        with psycopg.connect(postgres_admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )
            for role in (owner, app, other):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def spoke(tmp_path: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "spoke"
    root.mkdir()
    (root / "slipway.toml").write_text(_valid_toml())
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SLIPWAY_STATE_URL", roles.app)
    monkeypatch.setenv("SLIPWAY_STATE_RETRIES", "0")
    monkeypatch.setenv("SLIPWAY_ACTOR", "grace@example.com")
    trail_roles.migrate(roles.owner)
    trail_roles.grant_writer(roles.owner, store.spoke_key(root), role_of(roles.app))
    return root


def role_of(url: str) -> str:
    return url.split("//", 1)[1].split("@", 1)[0]


def refused(url: str, statement: LiteralString | sql.Composed) -> str:
    """Run `statement` as the role in `url`; the error PostgreSQL gave (it must refuse)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            return f"{type(exc).__name__}: {exc}"
    raise AssertionError(f"{statement!r} was allowed")


def cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--project", str(root), *args])
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")


def test_the_app_role_can_append_and_read_and_nothing_else(spoke: Path, roles: Roles):
    for i in range(3):
        audit.append(spoke, "note", model="churn-guard", version=i + 1, reason=f"n{i}")
    checked = audit.verify(spoke)
    assert checked.ok and checked.entries == 3, checked.problems
    assert not any("owns its tables" in n for n in checked.notes)

    # The reproduction, as the app role: every step is refused by PostgreSQL itself.
    for statement in (
        "ALTER TABLE slipway_audit DISABLE TRIGGER slipway_audit_no_rewrite",
        "DELETE FROM slipway_audit WHERE seq = 3",
        "UPDATE slipway_audit SET entry = '{}' WHERE seq = 3",
        "UPDATE slipway_audit_head SET seq = 2",
        "TRUNCATE slipway_audit",
        "INSERT INTO slipway_audit VALUES ('x', 4, 'p', 'h', 'not json')",
        "DROP TABLE slipway_audit",
        "CREATE OR REPLACE FUNCTION slipway_audit_append(text, bigint, text, text, text) "
        "RETURNS void LANGUAGE sql AS 'SELECT 1'",
    ):
        said = refused(roles.app, statement)
        assert "InsufficientPrivilege" in said or "must be owner" in said, said
    assert audit.verify(spoke).ok

    # Another team's role (granted its own trail) reads nothing of this one and cannot
    # append to it.
    trail = store.spoke_key(spoke)
    trail_roles.grant_writer(roles.owner, "another-team", role_of(roles.other_app))
    with psycopg.connect(roles.other_app) as conn:
        rows = conn.execute("SELECT count(*) FROM slipway_audit").fetchone()
        assert rows == (0,)
    said = refused(
        roles.other_app,
        sql.SQL("SELECT slipway_audit_append({}, 4, 'x', {}, '{{}}')").format(
            sql.Literal(trail), sql.Literal("0" * 64)
        ),
    )
    assert "may not append to the audit trail" in said


def registered(spoke: Path) -> tuple[MlflowClient, str]:
    """Version 1 of the spoke's model in its embedded registry, authored by ada."""
    uri = registry.embedded_tracking_uri(spoke)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    config = load_config(spoke)
    run = client.create_run(registry.experiment_id(client, spoke, config.model_name))
    client.create_registered_model(config.model_name)
    version = str(
        client.create_model_version(config.model_name, "s3://x/m", run.info.run_id).version
    )
    client.set_model_version_tag(config.model_name, version, registry.TAG_AUTHOR, "ada@x.io")
    return client, version


def test_an_owner_s_rewrite_is_found_by_the_registry_checkpoint(spoke: Path, roles: Roles):
    client, version = registered(spoke)
    config = load_config(spoke)
    audit.append(spoke, "note", model=config.model_name, version=version, reason="before")
    record_decision(
        spoke, config, client, version, Decision.rejected, by="grace@example.com", reason="bias"
    )
    assert cli(spoke, "audit", "--verify")[0] == 0

    # The reproduction, as the owner: trigger off, the last entry deleted, trigger on, the
    # head set back. The chain and head agree again; the registry's checkpoint does not.
    with psycopg.connect(roles.owner, autocommit=True) as conn:
        conn.execute("ALTER TABLE slipway_audit DISABLE TRIGGER slipway_audit_no_rewrite")
        conn.execute("DELETE FROM slipway_audit WHERE seq = 2")
        conn.execute("ALTER TABLE slipway_audit ENABLE TRIGGER slipway_audit_no_rewrite")
        first = conn.execute("SELECT hash FROM slipway_audit WHERE seq = 1").fetchone()
        assert first is not None
        conn.execute("UPDATE slipway_audit_head SET seq = 1, hash = %s", (first[0],))
    assert audit.verify(spoke).ok  # the trail alone cannot tell
    code, output = cli(spoke, "audit", "--verify")
    assert code == Exit.ERROR, output
    assert "registry checkpoint names audit entry seq 2, but the trail ends at seq 1" in output
    assert "audit trail intact" not in output


def test_a_row_written_around_the_function_is_tampering_never_a_traceback(
    spoke: Path, roles: Roles
):
    audit.append(spoke, "note", model="churn-guard", version="1", reason="first")
    with psycopg.connect(roles.owner, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO slipway_audit VALUES (%s, 2, 'x', 'y', 'not json')",
            (store.spoke_key(spoke),),
        )
    # `slipway audit` lists what it can read; `--verify` names the row by its seq.
    code, output = cli(spoke, "audit")
    assert code == 0 and "Traceback" not in output and "JSONDecodeError" not in output, output
    code, output = cli(spoke, "audit", "--verify")
    assert code == Exit.ERROR, output
    assert "row seq 2: past the trail's head (seq 1)" in output
    # An append stops at once with what happened and what to do, writing nothing.
    with pytest.raises(audit.AuditTrailError, match="row seq 2 sits past the trail's head"):
        audit.append(spoke, "note", model="churn-guard", version="1", reason="second")
    # `slipway reject` fails the same way and leaves the registry as it was: the decision's
    # tags are written only after its audit entry (the review saw `rejected` tagged anyway).
    client, version = registered(spoke)
    code, output = cli(spoke, "reject", version, "--by", "grace@example.com", "--reason", "bias")
    assert code != 0 and "row seq 2 sits past the trail's head" in output, output
    assert "conflicting appends" not in output and "Traceback" not in output
    assert "slipway.approval.state" not in client.get_model_version("churn-guard", version).tags
    with psycopg.connect(roles.admin) as conn:
        assert conn.execute("SELECT seq FROM slipway_audit_head").fetchall() == [(1,)]


def test_without_the_owner_s_migration_verify_warns_that_the_writer_owns_the_tables(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
):
    root = tmp_path / "legacy"
    root.mkdir()
    (root / "slipway.toml").write_text(_valid_toml())
    monkeypatch.setenv("SLIPWAY_STATE_URL", database)
    audit.append(root, "note", model="churn-guard", version="1", reason="x", actor="a@x")
    checked = audit.verify(root)
    assert checked.ok
    assert any("owns its tables" in note for note in checked.notes), checked.notes


def test_a_local_trail_is_imported_through_the_append_function(
    spoke: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SLIPWAY_STATE_URL", "local")
    for i in range(3):
        audit.append(spoke, "note", model="churn-guard", version=str(i + 1), reason="here")
    monkeypatch.setenv("SLIPWAY_STATE_URL", roles.app)
    done = audit.import_local(spoke)
    assert (done.imported, done.verbatim) == (3, True)
    checked = audit.verify(spoke)
    assert checked.ok and checked.entries == 3, checked.problems
