"""The check that keeps hub migrations online: no statement that holds a lock stopping ingest for longer than a moment.

A hub is upgraded while the stores keep selling and the older hub processes keep ingesting (expand, then contract:
docs/upgrading.md). A migration therefore runs on a live, populated database, and each statement is judged by the
lock it takes on a table that exists already (a table created in the same migration is empty and unseen):

- CREATE INDEX without CONCURRENTLY blocks every write to the table for the whole build;
- a column's type change, SET NOT NULL, a validated constraint, a volatile or generated default, a serial column
  rewrite or scan the table under ACCESS EXCLUSIVE (nothing reads or writes it meanwhile);
- DROP and RENAME break the previous release's code still running during a rolling upgrade (a contract step);
- an UPDATE or DELETE of a whole table locks every row it touches until its one transaction ends.

A statement that must do one of these anyway says so where it stands, with its reason, in a comment inside the
statement or just before it: ``-- lock-ok: RULE: why it is safe here`` (e.g. the table is known small, or the
release that stopped using a column has shipped). A migration whose first line is ``-- migration: no-transaction``
runs statement by statement outside a transaction (hub.db), as CREATE INDEX CONCURRENTLY needs; since a failed one
is run again from its first statement, it may hold only statements that can run twice (concurrent index builds and
drops with IF [NOT] EXISTS, SET). No migration may hold transaction control (BEGIN, COMMIT, ROLLBACK...).

Migrations numbered up to SHIPPED_BEFORE_ONLINE shipped before this rule: every hub upgraded from that release has
applied them already, and a new hub applies them to empty tables, so they are parsed but not judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHIPPED_BEFORE_ONLINE = 197
"""The highest migration number of release 0.1.0 (commit 17713a0), the last release without this check.
tests/test_upgrade_compat.py checks that no migration at or below it was added since that release."""

NO_TRANSACTION = "-- migration: no-transaction"
"""The first line of a migration that hub.db runs statement by statement, outside a transaction."""

RULES = {
    "index-not-concurrent": "CREATE/DROP INDEX without CONCURRENTLY blocks writes to the table for the whole build; "
                            "use CREATE INDEX CONCURRENTLY IF NOT EXISTS in a no-transaction migration",
    "concurrently-in-transaction": "CONCURRENTLY cannot run inside a transaction: make the migration's first line "
                                   f"'{NO_TRANSACTION}'",
    "concurrently-not-idempotent": "a concurrent index build that fails (lock timeout) is retried: write "
                                   "CREATE INDEX CONCURRENTLY IF NOT EXISTS / DROP INDEX CONCURRENTLY IF EXISTS",
    "no-transaction-not-rerunnable": "a no-transaction migration that fails midway (a lock timeout, a crash) is run "
                                     "again from its first statement: put in it only CREATE INDEX CONCURRENTLY IF NOT "
                                     "EXISTS, DROP INDEX CONCURRENTLY IF EXISTS and SET; anything else goes in a "
                                     "migration of its own (one transaction, applied whole or not at all)",
    "transaction-control": "hub.db runs each migration in its own transaction, or statement by statement: BEGIN, "
                           "COMMIT, ROLLBACK, SAVEPOINT and the like would end or split it (a half-applied migration "
                           "recorded or re-run); split the migration in two instead. No mark allows it",
    "column-type-change": "ALTER COLUMN ... TYPE rewrites the table under ACCESS EXCLUSIVE: add a new column, "
                          "write both, backfill in batches, switch readers, drop the old one later (expand/contract)",
    "set-not-null": "SET NOT NULL scans the table under ACCESS EXCLUSIVE: add CHECK (col IS NOT NULL) NOT VALID, "
                    "VALIDATE CONSTRAINT in a later statement, then SET NOT NULL (PostgreSQL skips the scan)",
    "validated-constraint": "a CHECK or FOREIGN KEY added without NOT VALID (or inline with ADD COLUMN) scans the "
                            "table under ACCESS EXCLUSIVE: add it NOT VALID, then VALIDATE CONSTRAINT (no write lock)",
    "unique-without-index": "ADD UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE: build the unique "
                            "index CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
    "rewriting-column": "ADD COLUMN with a volatile default (now() is fine, random()/clock_timestamp()/"
                        "gen_random_uuid()/nextval() are not), a serial, identity or GENERATED ... STORED column "
                        "rewrites the table under ACCESS EXCLUSIVE: add it without, then backfill in batches",
    "not-null-without-default": "ADD COLUMN ... NOT NULL without a DEFAULT fails on a populated table and breaks "
                                "the previous release's inserts: give it a constant DEFAULT, or add it nullable",
    "contract": "DROP or RENAME of a table or column breaks the previous release while it still runs (rolling "
                "upgrade): only once the release that stopped using it has shipped everywhere, and say so",
    "table-rewrite": "VACUUM FULL, CLUSTER, REINDEX without CONCURRENTLY, SET TABLESPACE, SET LOGGED/UNLOGGED and "
                     "LOCK TABLE hold ACCESS EXCLUSIVE for as long as they run",
    "whole-table-update": "UPDATE or DELETE without WHERE locks every row of the table until the migration "
                          "commits: backfill in batches from a service, or bound it",
}

_VOLATILE = re.compile(r"\b(random|clock_timestamp|timeofday|gen_random_uuid|uuid_generate_v[14]\w*|nextval|"
                       r"txid_current|statement_timestamp)\s*\(", re.IGNORECASE)
_MARK = re.compile(r"--\s*lock-ok:\s*([a-z-]+)\s*:\s*(\S.*)")
_NAME = r'(?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?'


@dataclass(frozen=True)
class Statement:
    sql: str
    """The statement as written, without its comments: what hub.db runs."""
    text: str
    """The same with whitespace collapsed (inside literals too): what the rules read."""
    line: int
    """Where it starts in its file (1-based)."""
    marks: frozenset[str]
    """The rules its `-- lock-ok: RULE: reason` comments allow."""


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    rule: str
    statement: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.statement[:100]}\n    {RULES[self.rule]}"


def statements(sql: str) -> list[Statement]:
    """The statements of `sql` in order, split at semicolons outside quotes, dollar quotes and comments; the comments
    before a statement and inside it are its own (its marks)."""
    found: list[Statement] = []
    text: list[str] = []
    comments: list[str] = []
    start = None
    line = 1
    i = 0
    while i < len(sql):
        char = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            comments.append(sql[i:end])
            i = end
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = len(sql) if end < 0 else end + 2
            line += sql.count("\n", i, end)
            i = end
            text.append(" ")
            continue
        if char in "'\"":
            end = i + 1
            while end < len(sql):
                if sql[end] == char and sql.startswith(char * 2, end):
                    end += 2
                    continue
                if sql[end] == char:
                    break
                end += 1
            end += 1
        elif char == "$" and (tag := re.match(r"\$[A-Za-z_]*\$", sql[i:])):
            close = sql.find(tag.group(0), i + len(tag.group(0)))
            end = len(sql) if close < 0 else close + len(tag.group(0))
        elif char == ";":
            if "".join(text).strip():
                found.append(_statement(text, comments, start or line))
            text, comments, start = [], [], None
            i += 1
            continue
        else:
            end = i + 1
        if start is None and not char.isspace():
            start = line
        text.append(sql[i:end])
        line += sql.count("\n", i, end)
        i = end
    if "".join(text).strip():
        found.append(_statement(text, comments, start or line))
    return found


def _statement(text: list[str], comments: list[str], line: int) -> Statement:
    marks = frozenset(match.group(1) for comment in comments if (match := _MARK.match(comment.strip())))
    sql = "".join(text).strip()
    return Statement(sql, " ".join(sql.split()), line, marks)


def _bare(name: str) -> str:
    """A table's name without schema and quotes, lower case: public.sales, "sales", sales -> sales."""
    return name.rpartition(".")[2].strip('"').lower()


def _rules(text: str, created: set[str], no_transaction: bool) -> list[str]:
    """The rules one statement breaks; `created`: the tables this migration created before it."""
    upper = text.upper()
    broken: list[str] = []
    concurrently = re.match(r"(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s+\w+)\s+CONCURRENTLY\b", upper)
    if concurrently:
        if not no_transaction:
            broken.append("concurrently-in-transaction")
        if (upper.startswith("CREATE") and not re.search(r"\bCONCURRENTLY\s+IF\s+NOT\s+EXISTS\b", upper)) or (
                upper.startswith("DROP") and not re.search(r"\bCONCURRENTLY\s+IF\s+EXISTS\b", upper)):
            broken.append("concurrently-not-idempotent")
        return broken
    if index := re.match(rf"CREATE\s+(?:UNIQUE\s+)?INDEX\b.*?\bON\s+(?:ONLY\s+)?({_NAME})", text, re.IGNORECASE):
        return [] if _bare(index.group(1)) in created else ["index-not-concurrent"]
    if re.match(r"DROP\s+INDEX\b", upper):
        return ["index-not-concurrent"]
    if re.match(r"(VACUUM\s+(\(.*?\)\s*)?FULL|CLUSTER|REINDEX|LOCK)\b", upper):
        return ["table-rewrite"]
    if table := re.match(rf"(?:UPDATE|DELETE\s+FROM)\s+(?:ONLY\s+)?({_NAME})", text, re.IGNORECASE):
        if _bare(table.group(1)) not in created and not re.search(r"\bWHERE\b", upper):
            broken.append("whole-table-update")
        return broken
    if re.match(r"DROP\s+(TABLE|VIEW|MATERIALIZED\s+VIEW)\b", upper):
        names = re.sub(r"(?i)^DROP\s+(TABLE|VIEW|MATERIALIZED\s+VIEW)\s+(IF\s+EXISTS\s+)?", "", text)
        return [] if all(_bare(name.split()[0]) in created for name in names.split(",") if name.strip()) \
            else ["contract"]
    if table := re.match(rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_NAME})\s+(.*)", text,
                         re.IGNORECASE | re.DOTALL):
        if _bare(table.group(1)) in created:
            return []
        for action in _actions(table.group(2)):
            broken.extend(rule for rule in _alter_rules(action) if rule not in broken)
    return broken


def _actions(actions: str) -> list[str]:
    """The comma-separated actions of one ALTER TABLE, split outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in actions:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _alter_rules(action: str) -> list[str]:
    upper = action.upper()
    if upper.startswith("RENAME"):
        return ["contract"]
    if re.match(r"DROP\s+(COLUMN\b|(?!CONSTRAINT|DEFAULT|NOT|IDENTITY|EXPRESSION)\w)", upper):
        return ["contract"]
    if re.match(r"ALTER\s+(COLUMN\s+)?\S+\s+(SET\s+DATA\s+)?TYPE\b", upper):
        return ["column-type-change"]
    if re.match(r"ALTER\s+(COLUMN\s+)?\S+\s+SET\s+NOT\s+NULL\b", upper):
        return ["set-not-null"]
    if re.match(r"SET\s+(TABLESPACE|LOGGED|UNLOGGED)\b", upper):
        return ["table-rewrite"]
    if upper.startswith("ADD") and not re.match(r"ADD\s+(COLUMN\b|CONSTRAINT|CHECK|FOREIGN|UNIQUE|PRIMARY|EXCLUDE)",
                                                 upper):
        upper = "ADD COLUMN " + upper[3:].lstrip()  # ADD name type: a column
    if re.match(r"ADD\s+(CONSTRAINT\s+\S+\s+)?(UNIQUE|PRIMARY\s+KEY|EXCLUDE)\b", upper):
        return [] if " USING INDEX " in f" {upper} " else ["unique-without-index"]
    if re.match(r"ADD\s+(CONSTRAINT\s+\S+\s+)?(CHECK|FOREIGN\s+KEY)\b", upper):
        return [] if re.search(r"\bNOT\s+VALID\s*$", upper) else ["validated-constraint"]
    if upper.startswith("ADD COLUMN"):
        broken = []
        definition = re.sub(r"^ADD\s+COLUMN\s+(IF\s+NOT\s+EXISTS\s+)?", "", upper)
        if re.search(r"\b(CHECK|REFERENCES)\b", definition):
            broken.append("validated-constraint")
        if (re.search(r"\b(SMALL|BIG)?SERIAL\b|\bGENERATED\b", definition)
                or (" DEFAULT " in f" {definition} " and _VOLATILE.search(definition))):
            broken.append("rewriting-column")
        if re.search(r"\bNOT\s+NULL\b", definition) and " DEFAULT " not in f" {definition} " \
                and "rewriting-column" not in broken:
            broken.append("not-null-without-default")
        return broken
    return []


_TRANSACTION_CONTROL = re.compile(r"(BEGIN|COMMIT|ROLLBACK|ABORT|END|START\s+TRANSACTION|SAVEPOINT|RELEASE|"
                                  r"PREPARE\s+TRANSACTION)\b", re.IGNORECASE)
_RERUNNABLE = re.compile(r"((CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s+\w+)\s+CONCURRENTLY|SET|RESET)\b",
                         re.IGNORECASE)
"""What a no-transaction migration may hold (a concurrent build or drop must say IF [NOT] EXISTS too: its own rule)."""
UNMARKABLE = frozenset({"transaction-control"})
"""Rules no `-- lock-ok:` comment allows."""


def lint_sql(path: Path, sql: str) -> list[Finding]:
    """The statements of one migration that would stop ingest (or break the previous release), unless marked."""
    no_transaction = sql.lstrip().lower().startswith(NO_TRANSACTION)
    created: set[str] = set()
    findings: list[Finding] = []
    for statement in statements(sql):
        if _TRANSACTION_CONTROL.match(statement.text):
            findings.append(Finding(path, statement.line, "transaction-control", statement.text))
            continue
        if no_transaction and not _RERUNNABLE.match(statement.text) \
                and "no-transaction-not-rerunnable" not in statement.marks:
            findings.append(Finding(path, statement.line, "no-transaction-not-rerunnable", statement.text))
        if table := re.match(rf"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({_NAME})",
                             statement.text, re.IGNORECASE):
            created.add(_bare(table.group(1)))
            continue
        findings.extend(Finding(path, statement.line, rule, statement.text)
                        for rule in _rules(statement.text, created, no_transaction)
                        if rule not in statement.marks or rule in UNMARKABLE)
    return findings


def unknown_marks(sql: str) -> list[str]:
    """The rule names `-- lock-ok:` comments name that are no rule (a typo would silently allow nothing)."""
    return [match.group(1) for line in sql.splitlines() if (match := _MARK.match(line.strip()))
            and match.group(1) not in RULES]


def judged(number: int) -> bool:
    """Whether a migration of this number is held to the online rules (it did not ship before them)."""
    return number > SHIPPED_BEFORE_ONLINE
