"""Every hub migration is online: no statement in it would stop ingest (or break the previous release still running
during a rolling upgrade) unless it is marked, with its reason, where it stands (hub.migration_lint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.db import planned
from hub.domains import domains
from hub.migration_lint import RULES, judged, lint_sql, statements, unknown_marks


def test_every_hub_migration_after_the_last_release_without_the_rule_is_online() -> None:
    migrations = planned(domains())
    assert len(migrations) > 40
    findings = [finding for migration in migrations if judged(migration.number)
                for finding in lint_sql(migration.path, migration.path.read_text())]
    assert not findings, "lock-heavy statements in hub migrations (mark them '-- lock-ok: RULE: reason' only if " \
        "safe):\n" + "\n".join(map(str, findings))
    for migration in migrations:
        sql = migration.path.read_text()
        assert statements(sql), f"{migration.path}: no statement"
        assert not unknown_marks(sql), f"{migration.path}: -- lock-ok names no rule: {unknown_marks(sql)}"


def test_the_shipped_migrations_would_fail_it_so_the_check_can_fail() -> None:
    """The releases before the rule did index their tables in place: read as new, they break it."""
    shipped = [m for m in planned(domains()) if not judged(m.number)]
    rules = {finding.rule for m in shipped for finding in lint_sql(m.path, m.path.read_text())}
    assert {"index-not-concurrent", "validated-constraint", "rewriting-column"} <= rules


REFUSED = [
    ("CREATE INDEX sales_till ON sales (till)", "index-not-concurrent"),
    ("create unique index x on public.\"sales\" (a)", "index-not-concurrent"),
    ("DROP INDEX sales_till", "index-not-concurrent"),
    ("CREATE INDEX CONCURRENTLY IF NOT EXISTS sales_till ON sales (till)", "concurrently-in-transaction"),
    ("ALTER TABLE sales ALTER COLUMN total_minor TYPE numeric", "column-type-change"),
    ("ALTER TABLE sales ALTER total_minor SET DATA TYPE numeric", "column-type-change"),
    ("ALTER TABLE sales ALTER COLUMN till SET NOT NULL", "set-not-null"),
    ("ALTER TABLE sales ADD CONSTRAINT positive CHECK (total_minor >= 0)", "validated-constraint"),
    ("ALTER TABLE sales ADD FOREIGN KEY (event_id) REFERENCES inbox (event_id)", "validated-constraint"),
    ("ALTER TABLE sales ADD COLUMN x int CHECK (x > 0)", "validated-constraint"),
    ("ALTER TABLE sales ADD CONSTRAINT one UNIQUE (tenant, store, seq)", "unique-without-index"),
    ("ALTER TABLE sales ADD PRIMARY KEY (event_id)", "unique-without-index"),
    ("ALTER TABLE sales ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()", "rewriting-column"),
    ("ALTER TABLE sales ADD COLUMN at timestamptz DEFAULT clock_timestamp()", "rewriting-column"),
    ("ALTER TABLE sales ADD COLUMN n bigserial", "rewriting-column"),
    ("ALTER TABLE sales ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY", "rewriting-column"),
    ("ALTER TABLE sales ADD COLUMN t text GENERATED ALWAYS AS (lower(till)) STORED", "rewriting-column"),
    ("ALTER TABLE sales ADD COLUMN note text NOT NULL", "not-null-without-default"),
    ("ALTER TABLE sales ADD note text NOT NULL", "not-null-without-default"),
    ("ALTER TABLE sales DROP COLUMN till", "contract"),
    ("ALTER TABLE sales DROP till", "contract"),
    ("ALTER TABLE sales RENAME COLUMN till TO register", "contract"),
    ("ALTER TABLE sales RENAME TO orders", "contract"),
    ("DROP TABLE sale_tenders", "contract"),
    ("VACUUM FULL sales", "table-rewrite"),
    ("CLUSTER sales USING sales_pkey", "table-rewrite"),
    ("REINDEX TABLE sales", "table-rewrite"),
    ("LOCK TABLE sales IN ACCESS EXCLUSIVE MODE", "table-rewrite"),
    ("ALTER TABLE sales SET TABLESPACE slow", "table-rewrite"),
    ("UPDATE sales SET till = lower(till)", "whole-table-update"),
    ("DELETE FROM inbox", "whole-table-update"),
    ("ALTER TABLE sales ADD COLUMN a text, ALTER COLUMN till TYPE varchar(20)", "column-type-change"),
]


@pytest.mark.parametrize(("sql", "rule"), REFUSED)
def test_a_lock_heavy_statement_is_refused_with_its_rule(sql: str, rule: str) -> None:
    assert rule in {finding.rule for finding in lint_sql(Path("9000_x.sql"), sql + ";")}


@pytest.mark.parametrize(("sql", "rule"), REFUSED)
def test_a_marked_statement_is_allowed(sql: str, rule: str) -> None:
    marked = f"-- lock-ok: {rule}: the table holds ten rows\n{sql};"
    assert rule not in {finding.rule for finding in lint_sql(Path("9000_x.sql"), marked)}


def test_the_online_forms_pass() -> None:
    concurrent = """-- migration: no-transaction
SET lock_timeout = '2s';
-- a comment
CREATE INDEX CONCURRENTLY IF NOT EXISTS sales_till ON sales (till);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS sales_one ON sales (tenant, store, seq);
DROP INDEX CONCURRENTLY IF EXISTS sales_old;
"""
    assert lint_sql(Path("9000_x.sql"), concurrent) == []
    sql = """ALTER TABLE sales ADD CONSTRAINT sales_one UNIQUE USING INDEX sales_one;
ALTER TABLE sales ADD COLUMN note text;
ALTER TABLE sales ADD COLUMN flagged boolean NOT NULL DEFAULT false, ADD COLUMN at timestamptz DEFAULT now();
ALTER TABLE sales ADD CONSTRAINT till_set CHECK (till IS NOT NULL) NOT VALID;
ALTER TABLE sales VALIDATE CONSTRAINT till_set;
ALTER TABLE sales DROP CONSTRAINT IF EXISTS sales_old_check, ALTER COLUMN note SET DEFAULT '';
UPDATE sales SET note = '' WHERE event_id IN (SELECT event_id FROM sales WHERE note IS NULL LIMIT 1000);
CREATE TABLE notes (id bigserial PRIMARY KEY, sale uuid NOT NULL, body text NOT NULL);
CREATE INDEX notes_sale ON notes (sale);
ALTER TABLE notes ADD COLUMN at timestamptz NOT NULL;
ALTER TABLE notes ALTER COLUMN body TYPE varchar(200);
DROP TABLE notes;
"""
    assert lint_sql(Path("9000_x.sql"), sql) == []


def test_a_concurrent_build_must_be_idempotent_since_a_failed_one_is_tried_again() -> None:
    rules = [finding.rule for finding in lint_sql(Path("9000_x.sql"), "-- migration: no-transaction\n"
                                                  "CREATE INDEX CONCURRENTLY sales_till ON sales (till);\n"
                                                  "DROP INDEX CONCURRENTLY sales_old;")]
    assert rules == ["concurrently-not-idempotent", "concurrently-not-idempotent"]


def test_statements_split_at_semicolons_outside_strings_dollar_quotes_and_comments() -> None:
    sql = """-- a comment; with a semicolon
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.a := 'x;y'; RETURN NEW; END $$;
/* block; comment */ COMMENT ON COLUMN t.a IS 'it''s; fine';
SELECT "odd;name" FROM t;
INSERT INTO t VALUES ($tag$ ; $tag$)"""
    found = statements(sql)
    assert [s.line for s in found] == [2, 3, 4, 5]
    assert found[0].sql.endswith("END $$") and "'x;y'" in found[0].sql
    assert found[1].text == "COMMENT ON COLUMN t.a IS 'it''s; fine'"
    assert found[2].text == 'SELECT "odd;name" FROM t'
    assert found[3].text == "INSERT INTO t VALUES ($tag$ ; $tag$)"


def test_a_mark_without_a_reason_or_naming_no_rule_allows_nothing() -> None:
    assert lint_sql(Path("x.sql"), "-- lock-ok: index-not-concurrent\nCREATE INDEX i ON sales (a);")
    assert lint_sql(Path("x.sql"), "-- lock-ok: index-not-concurent: typo\nCREATE INDEX i ON sales (a);")
    assert unknown_marks("-- lock-ok: index-not-concurent: typo\nCREATE INDEX i ON sales (a);") == [
        "index-not-concurent"]
    # a mark belongs to the statement after it, not to the next one
    findings = lint_sql(Path("x.sql"), "-- lock-ok: index-not-concurrent: tiny\nCREATE INDEX i ON t (a);\n"
                        "CREATE INDEX j ON u (a);")
    assert [(f.line, f.rule) for f in findings] == [(3, "index-not-concurrent")]


def test_every_rule_says_what_to_do_instead() -> None:
    assert {rule for _, rule in REFUSED} | {"concurrently-not-idempotent", "no-transaction-not-rerunnable",
                                            "transaction-control"} == set(RULES)


@pytest.mark.parametrize("sql", [
    "ALTER TABLE sales ADD COLUMN note text", "INSERT INTO settings (name, value) VALUES ('a', 'b')",
    "UPDATE sales SET note = '' WHERE note IS NULL", "CREATE TABLE notes (id bigint)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON sales (till); ALTER TABLE sales ADD COLUMN b text"])
def test_a_no_transaction_migration_holds_only_statements_that_run_twice(sql: str) -> None:
    """hub.db runs a failed no-transaction migration again from its first statement: an ADD COLUMN would fail the
    second time, an INSERT would double."""
    findings = lint_sql(Path("9000_x.sql"), f"-- migration: no-transaction\n{sql};")
    assert "no-transaction-not-rerunnable" in {finding.rule for finding in findings}
    assert "no-transaction-not-rerunnable" not in {finding.rule for finding in lint_sql(Path("9000_x.sql"), sql + ";")}


@pytest.mark.parametrize("sql", ["BEGIN", "COMMIT", "ROLLBACK", "commit work", "START TRANSACTION", "END",
                                 "SAVEPOINT s", "RELEASE SAVEPOINT s", "ROLLBACK TO SAVEPOINT s", "ABORT"])
def test_transaction_control_is_refused_everywhere_even_marked(sql: str) -> None:
    for prefix in ("", "-- migration: no-transaction\n", "-- lock-ok: transaction-control: it is fine\n"):
        findings = lint_sql(Path("9000_x.sql"), f"{prefix}ALTER TABLE sales ADD COLUMN note text;\n{sql};\n"
                                                "ALTER TABLE sales ADD COLUMN other text;")
        assert "transaction-control" in {finding.rule for finding in findings}, (prefix, sql)
