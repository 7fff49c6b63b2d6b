r"""``check_select_query``: accept exactly one read-only SELECT, judged on a real parse tree.

Why sqlglot (pinned) rather than DuckDB's ``json_serialize_sql``: a source query runs on DuckDB
*or* PostgreSQL, and only sqlglot parses each dialect by its own grammar (PostgreSQL's
``FOR UPDATE``, ``SELECT ... INTO``, dollar quoting; DuckDB's ``FROM 'file.csv'``, ``FROM``-first
queries). DuckDB's serializer knows DuckDB's grammar only, refuses anything that is not a
SELECT without saying what it saw, and drops clauses it ignores. On DuckDB the engine's own
statement splitter is asked as well (one SELECT statement), so a query the two parsers read
differently is refused.

Rules, applied to every node of the tree (CTEs, subqueries, set operations, lateral joins...):

- the root is a SELECT or a set operation of SELECTs; any other statement kind is refused;
- statements anywhere inside (INSERT/UPDATE/DELETE/MERGE, DDL, COPY, ATTACH, PRAGMA, SET,
  anything sqlglot could only keep as an opaque command), ``SELECT ... INTO`` and locking
  clauses are refused;
- a table-valued function (in FROM, a join or LATERAL) is refused unless allowlisted;
- functions that reach files, the network, the environment or settings, or that have side
  effects (sequences, locks, sleeping, signalling backends) are refused wherever they appear;
  the list covers both dialects, so a query is refused for a function either engine reads;
- function and table names must be plain identifiers: ``U&"\0070g_read_file"`` is
  ``pg_read_file`` to PostgreSQL but an odd name to sqlglot,
  and DuckDB reads ``FROM 'x.csv'`` or ``FROM "x.csv"`` as a file, while sqlglot cannot tell
  a quoted name from a string in that position;
- a parse the parser reports as lossy (a warning: unsupported syntax dropped or kept as an
  opaque command) is refused.

This is one layer: the source is also read where writing and escaping are impossible anyway (a
hardened DuckDB connection in a read-only transaction, a PostgreSQL ``READ ONLY`` transaction
under a SELECT-only role). At config time the engine is not known yet: the query is parsed
with both dialects; it must parse in at least one and no parse may hit a refusal. The exact
dialect is checked again when the query runs.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Literal

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from moments_pipeline.warehouse._sql import pipeline_table_refusal

SqlDialect = Literal["duckdb", "postgres"]
DIALECTS: tuple[SqlDialect, ...] = ("duckdb", "postgres")


class UnsafeQueryError(ValueError):
    """A configured query is not exactly one read-only SELECT statement."""


#: Table functions a source may call in FROM: they compute rows and touch nothing else.
SAFE_TABLE_FUNCTIONS: frozenset[str] = frozenset(
    {"unnest", "generate_series", "exploding_generate_series", "range", "generate_subscripts"}
)

_FILES = "it reads or writes files"
_NETWORK = "it reaches other databases or the network"
_ENVIRONMENT = "it reads the environment or the server's settings"
_DYNAMIC = "it runs SQL text the check cannot see"
_SIDE_EFFECT = "it has side effects"

#: Exact function names refused anywhere, with the reason given in the error.
_REFUSED_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(
        [
            "glob",
            "sniff_csv",
            "read_blob",
            "read_text",
            "pg_read_file",
            "pg_read_binary_file",
            "pg_stat_file",
            "csv_scan",
            "delta_scan",
            "iceberg_scan",
            "iceberg_metadata",
            "iceberg_snapshots",
            "from_csv_auto",
            "json_scan",
            "arrow_scan",
            "ducklake_scan",
        ],
        _FILES,
    ),
    **dict.fromkeys(
        ["postgres_query", "postgres_execute", "mysql_query", "mysql_execute", "httpfs"],
        _NETWORK,
    ),
    **dict.fromkeys(
        ["getenv", "current_setting", "set_config", "getvariable", "which_secret"],
        _ENVIRONMENT,
    ),
    **dict.fromkeys(
        ["query", "query_table", "json_execute_serialized_sql", "json_serialize_sql"],
        _DYNAMIC,
    ),
    **dict.fromkeys(
        [
            "nextval",
            "setval",
            "currval",
            "lastval",
            "setseed",
            "pg_sleep",
            "pg_sleep_for",
            "pg_sleep_until",
            "pg_terminate_backend",
            "pg_cancel_backend",
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_switch_wal",
            "pg_create_restore_point",
            "pg_promote",
            "pg_backup_start",
            "pg_backup_stop",
            "pg_notify",
            "pg_export_snapshot",
            "pg_log_backend_memory_contexts",
            "pg_import_system_collations",
            "checkpoint",
            "force_checkpoint",
        ],
        _SIDE_EFFECT,
    ),
}

#: Name prefixes refused anywhere (families of functions), with the reason.
_REFUSED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("read_", _FILES),
    ("parquet_", _FILES),
    ("pg_ls_", _FILES),
    ("pg_file_", _FILES),
    ("lo_", _FILES),
    ("dblink", _NETWORK),
    ("http_", _NETWORK),
    ("postgres_scan", _NETWORK),
    ("postgres_attach", _NETWORK),
    ("mysql_", _NETWORK),
    ("sqlite_", _FILES),
    ("query_to_xml", _DYNAMIC),
    ("cursor_to_xml", _DYNAMIC),
    ("table_to_xml", _DYNAMIC),
    ("schema_to_xml", _DYNAMIC),
    ("database_to_xml", _DYNAMIC),
    ("pg_advisory", _SIDE_EFFECT),
    ("pg_try_advisory", _SIDE_EFFECT),
    ("txid_", _SIDE_EFFECT),
    ("pg_current_xact_id", _SIDE_EFFECT),
    ("pg_stat_reset", _SIDE_EFFECT),
    ("pg_replication_", _SIDE_EFFECT),
    ("pg_logical_", _SIDE_EFFECT),
    ("pg_create_", _SIDE_EFFECT),
    ("pg_drop_replication", _SIDE_EFFECT),
    ("duckdb_secret", _ENVIRONMENT),
)

#: Node kinds refused wherever they appear: statements that are not reads, and read-modifiers.
_REFUSED_NODES: tuple[tuple[type[exp.Expr], str], ...] = (
    (exp.Into, "SELECT ... INTO is refused: it creates a table"),
    (exp.Lock, "a locking clause (FOR UPDATE/SHARE) is refused: a source read locks nothing"),
)
_STATEMENT_NODES: tuple[type[exp.Expr], ...] = (
    exp.DML, exp.DDL, exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop,
    exp.Alter, exp.TruncateTable, exp.Copy, exp.Attach, exp.Detach, exp.Install, exp.Pragma,
    exp.Set, exp.Command, exp.Describe, exp.Summarize, exp.Use, exp.Transaction, exp.Commit,
    exp.Rollback, exp.Grant, exp.Revoke, exp.Analyze, exp.LoadData, exp.Kill, exp.Cache,
    exp.Uncache, exp.Refresh, exp.Export, exp.Show, exp.Execute, exp.Declare, exp.Comment,
)  # fmt: skip
_STATEMENT_NAMES: dict[str, str] = {"truncatetable": "TRUNCATE", "loaddata": "LOAD DATA"}

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_TABLE_POSITIONS = (exp.Table, exp.From, exp.Join, exp.Lateral)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# sqlglot reports lossy parses (syntax it dropped or kept as an opaque command) as log
# warnings only; they are collected per parse, under a lock since the handler is shared.
_SQLGLOT_LOGGER = logging.getLogger("sqlglot")
_PARSE_LOCK = threading.Lock()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def check_select_query(sql: str, dialect: SqlDialect | None = None) -> str:
    """Return ``sql`` if it is exactly one read-only SELECT in ``dialect``, else raise.

    Args:
        sql: The query text from a config.
        dialect: The engine that will run it; None (config time) checks both dialects.

    Returns:
        The unchanged text.

    Raises:
        UnsafeQueryError: Not parseable, not one statement, not a SELECT, or something inside
            is refused; the message names what.
    """
    if dialect is not None:
        _check_in(sql, dialect)
        return sql
    parse_errors: list[UnsafeQueryError] = []
    for candidate in DIALECTS:
        try:
            _check_in(sql, candidate)
        except _ParseFailed as exc:
            parse_errors.append(exc)
    if len(parse_errors) == len(DIALECTS):
        raise parse_errors[0]
    return sql


class _ParseFailed(UnsafeQueryError):
    """The dialect's parser could not read the query (another dialect may)."""


def _check_in(sql: str, dialect: SqlDialect) -> None:
    statements = _parse(sql, dialect)
    if len(statements) != 1:
        raise UnsafeQueryError(f"query must be one statement, found {len(statements)}")
    root = statements[0]
    if not isinstance(root, (exp.Select, exp.SetOperation)):
        raise UnsafeQueryError(f"query must be a SELECT, found {_root_name(root, sql)}")
    for node in root.walk():
        _check_node(node)
    if dialect == "duckdb":
        _check_duckdb_agrees(sql)


def _parse(sql: str, dialect: SqlDialect) -> list[exp.Expr]:
    collect = _Collect()
    with _PARSE_LOCK:
        _SQLGLOT_LOGGER.addHandler(collect)
        try:
            parsed = sqlglot.parse(sql, read=dialect)
        except ParseError as exc:
            raise _ParseFailed(f"query could not be parsed ({dialect}): {_describe(exc)}") from None
        finally:
            _SQLGLOT_LOGGER.removeHandler(collect)
    statements = [s for s in parsed if s is not None]
    for statement in statements:
        if isinstance(statement, exp.Command):
            raise UnsafeQueryError(f"query must be a SELECT, found {_statement_name(statement)}")
    if collect.messages:
        raise UnsafeQueryError(
            f"query uses syntax the {dialect} parser cannot check ({collect.messages[0]}); "
            "put it in a view and read that with 'table:'"
        )
    return statements


def _check_node(node: exp.Expr) -> None:
    for kind, message in _REFUSED_NODES:
        if isinstance(node, kind):
            raise UnsafeQueryError(message)
    if isinstance(node, _STATEMENT_NODES):
        raise UnsafeQueryError(f"{_statement_name(node)}{_where(node)} is refused")
    if isinstance(node, exp.Func):
        _check_function(node)
    elif isinstance(node, exp.Table):
        _check_table_name(node)


def _check_function(node: exp.Func) -> None:
    if isinstance(node, exp.Anonymous) and not _PLAIN_NAME.fullmatch(str(node.name)):
        # PostgreSQL's U&"\0070g_read_file" is pg_read_file to the server but not to sqlglot:
        # a function is called by a plain name or not at all.
        raise UnsafeQueryError(
            f"function name {str(node.name)!r} is refused: functions are called by plain names"
        )
    names = _function_names(node)
    shown = node.name.lower() if isinstance(node, exp.Anonymous) else sorted(names)[0]
    for name in names:
        reason = _REFUSED_FUNCTIONS.get(name)
        if reason is None:
            reason = next(
                (why for prefix, why in _REFUSED_PREFIXES if name.startswith(prefix)), None
            )
        if reason is not None:
            raise UnsafeQueryError(f"function {name} is refused: {reason}")
    in_from = isinstance(node.parent, _TABLE_POSITIONS) or isinstance(node, exp.UDTF)
    if in_from and not names & SAFE_TABLE_FUNCTIONS:
        raise UnsafeQueryError(
            f"table function {shown} is refused: only {sorted(SAFE_TABLE_FUNCTIONS)} may "
            "produce rows in FROM"
        )


def _function_names(node: exp.Func) -> set[str]:
    # A typed node (ReadCSV, GenerateSeries...) is known by all its SQL names; an anonymous
    # one by the name written. Lower-cased: refusing a quoted look-alike costs nothing.
    if isinstance(node, exp.Anonymous):
        return {str(node.name).lower()}
    names = {n.lower() for n in type(node).sql_names()}
    names.add(type(node).key.lower())
    return names


def _check_table_name(node: exp.Table) -> None:
    refusal = pipeline_table_refusal(str(node.name))
    if refusal:
        raise UnsafeQueryError(refusal)
    for part in ("catalog", "db", "this"):
        value = node.args.get(part)
        if isinstance(value, exp.Identifier) and not _PLAIN_NAME.fullmatch(value.name):
            raise UnsafeQueryError(
                f"table name {value.name!r} is refused: only plain identifiers may name a "
                "table (DuckDB reads a quoted path in FROM as a file)"
            )


def _check_duckdb_agrees(sql: str) -> None:
    # DuckDB's own splitter must also see exactly one SELECT: a text the two parsers read
    # differently is refused rather than trusted.
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _ParseFailed(f"query could not be parsed (duckdb): {first_line}") from None
    if len(statements) != 1:
        raise UnsafeQueryError(f"query must be one statement, found {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise UnsafeQueryError(f"query must be a SELECT, found {statements[0].type.name}")


def _statement_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).split()[0].upper() if node.this else "COMMAND"
    key = type(node).key.lower()
    return _STATEMENT_NAMES.get(key, key.upper())


def _root_name(root: exp.Expr, sql: str) -> str:
    # A statement node names itself; anything else (a lenient parse of an unknown statement,
    # BEGIN...) is named by the query's first word, which is what its author wrote.
    if isinstance(root, _STATEMENT_NODES) and not isinstance(root, exp.Transaction):
        return _statement_name(root)
    words = re.findall(r"[A-Za-z_]+", sql)
    return words[0].upper() if words else type(root).key.upper()


def _where(node: exp.Expr) -> str:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.CTE):
            return " inside a CTE"
        if isinstance(parent, (exp.Subquery, exp.Lateral)):
            return " inside a subquery"
        parent = parent.parent
    return ""


def _describe(exc: ParseError) -> str:
    if exc.errors:
        first = exc.errors[0]
        return f"{first.get('description')} at line {first.get('line')}, column {first.get('col')}"
    return _ANSI.sub("", str(exc)).splitlines()[0]
