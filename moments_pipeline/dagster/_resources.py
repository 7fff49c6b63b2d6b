"""Dagster resources: thin, configurable builders of the plain Moments client and warehouse.

In the style of Dagster's own integration libraries, a resource holds configuration only and
builds a plain object (``MomentsClientConfig``/``MomentsClient``, ``Warehouse``) that knows
nothing about Dagster. Secrets (the API key, a PostgreSQL password inside a DSN) are declared
``repr=False`` and are meant to be given as ``dg.EnvVar`` so the Dagster UI shows the variable's
name, never its value; anything this module hands to metadata goes through ``redacted_url``.

Source connections: an audience's ``source.connection`` is ``warehouse`` (the default: the
ledger's own warehouse) or a name in ``WarehouseResource.sources``. An audience naming another
connection is refused when definitions are built (``unknown_connections``), never at run time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dagster as dg
import httpx
from pydantic import Field, SecretStr

from moments_pipeline.config import DEFAULT_WAREHOUSE_URL, LEDGER_CONNECTION, AudienceConfig
from moments_pipeline.infobip import (
    DEFAULT_MAX_BODY_BYTES,
    CallbackReceiver,
    CallbackServer,
    MomentsClient,
    MomentsClientConfig,
    RawReportHandler,
    default_pacing_dir,
    rate_budget_for,
)
from moments_pipeline.sync import SqlPacingRecord
from moments_pipeline.warehouse import Warehouse, connect_warehouse, is_postgres_url, redact_url

ACCOUNT_POOL = "moments_infobip_account"
"""The Dagster pool of the steps that send to the Infobip account (the sync step).

A code location holds one ``MomentsResource``, so one account: its sending steps share this
pool, and ``dagster instance concurrency set moments_infobip_account N`` caps how many run at
once. The pool bounds concurrency, not rate; the account's 10 requests/s across all of them is
kept by the shared pacing record (``shared_pacing``).
"""


class MomentsResource(dg.ConfigurableResource):
    """Connection settings of one Infobip account; builds a :class:`MomentsClient`.

    Attributes:
        base_url: The account's API base URL (``dg.EnvVar("INFOBIP_BASE_URL")``).
        api_key: The API key (``dg.EnvVar("INFOBIP_API_KEY")``); never shown in a repr.
        rate_per_s: Requests per second of the account (Infobip allows 10).
        max_in_flight: Concurrent requests of one client.
        connect_timeout_s: Time allowed to open a connection.
        read_timeout_s: Time allowed for an answer once a request is written.
        allow_insecure_http: Permit plain http to a non-loopback host (test rigs only).
        callback_host: Interface the notifyUrl callback receiver binds (None: poll reports).
        callback_port: Port of the callback receiver (0: a free port).
        callback_public_url: URL at which Infobip reaches the receiver, when behind a proxy.
        callback_max_body_bytes: Largest report body the receiver accepts (2 MiB; a report of
            1000 participants is ~150 KB); beyond it 413, without reading the rest.
        shared_pacing: Share the account's rate budget with every other process of this host
            (other runs, backfills, the CLI) through a pacing record file; off, this run paces
            alone and concurrent runs together may exceed the account's limit.
        pacing_dir: Directory of the pacing records (default: ``$MOMENTS_PACING_DIR``, else
            ``$DAGSTER_HOME/moments_pacing``, else the system temp directory).
        pacing_url: A PostgreSQL URL (e.g. the ledger's) whose ``moments_pacing_record`` table
            holds the record instead of the file, for runs on several hosts; never shown.
    """

    base_url: str = Field(description="Infobip API base URL, e.g. https://xxxx.api.infobip.com")
    api_key: str = Field(repr=False, description="Infobip API key; give it as an EnvVar")
    rate_per_s: float = Field(default=10.0, gt=0, description="Requests per second (Infobip: 10)")
    max_in_flight: int = Field(default=8, ge=1, description="Concurrent requests")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    allow_insecure_http: bool = Field(
        default=False, description="Allow http:// to a non-loopback host (never in production)"
    )
    callback_host: str | None = Field(default=None, description="Bind host of the receiver")
    callback_port: int | None = Field(default=None, ge=0, le=65535)
    callback_public_url: str | None = Field(
        default=None, description="Public URL of the callback receiver (defaults to host:port)"
    )
    callback_max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="Largest notifyUrl report accepted; larger bodies get 413 unread",
    )
    shared_pacing: bool = Field(
        default=True,
        description="One rate budget per account across every process of this host",
    )
    pacing_dir: str | None = Field(
        default=None, description="Directory of the shared pacing records (default: see docs)"
    )
    pacing_url: str | None = Field(
        default=None,
        repr=False,
        description="PostgreSQL URL holding the shared pacing record (runs on several hosts); "
        "give it as an EnvVar",
    )

    def client_config(self) -> MomentsClientConfig:
        """The plain client configuration (the key wrapped in a ``SecretStr``)."""
        return MomentsClientConfig(
            base_url=self.base_url,
            api_key=SecretStr(self.api_key),
            rate_per_s=self.rate_per_s,
            max_in_flight=self.max_in_flight,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            allow_insecure_http=self.allow_insecure_http,
            pacing_dir=(self.pacing_dir or default_pacing_dir()) if self.shared_pacing else None,
        )

    def get_client(self, *, transport: httpx.AsyncBaseTransport | None = None) -> MomentsClient:
        """Build a client (an async context manager); ``transport`` is for in-process tests."""
        config = self.client_config()
        budget = None
        if self.shared_pacing and self.pacing_url:
            budget = rate_budget_for(config, record=_sql_pacing_record(self.pacing_url, config))
        return MomentsClient(config, transport=transport, rate_budget=budget)

    def callback_server(self, handler: RawReportHandler) -> CallbackServer | None:
        """A notifyUrl receiver for ``handler``, or None when reports are to be polled.

        Each call builds a new receiver, so every sync run has its own random 256-bit path
        token: a notifyUrl seen in one run's requests opens nothing in the next. The server's
        ``notify_url`` holds it (sent to Infobip only); show ``redacted_notify_url``.

        Args:
            handler: Called with each report Infobip POSTs back, as checked JSON (a raw
                handler of ``CallbackReceiver``), returning what it did with it.
        """
        if self.callback_host is None:
            return None
        return CallbackServer(
            # The handler's ledger keeps the reports: none are held in the receiver itself.
            CallbackReceiver(
                raw_handler=handler, keep_reports=0, max_body_bytes=self.callback_max_body_bytes
            ),
            host=self.callback_host,
            port=self.callback_port or 0,
            public_base_url=self.callback_public_url,
        )

    def describe(self) -> dict[str, str]:
        """Secret-free description of the account, for metadata."""
        config = self.client_config()
        return {"base_url": config.base_url, "key_fingerprint": config.key_fingerprint}


_SQL_RECORDS: dict[tuple[str, str], SqlPacingRecord] = {}
_SQL_RECORDS_LOCK = threading.Lock()


def _sql_pacing_record(url: str, config: MomentsClientConfig) -> SqlPacingRecord:
    """The process's PostgreSQL pacing record of the account (one connection, kept open)."""
    with _SQL_RECORDS_LOCK:
        record = _SQL_RECORDS.get((url, config.account_id))
        if record is None:
            if not is_postgres_url(url):
                raise ValueError("MomentsResource.pacing_url must be a PostgreSQL URL")
            record = SqlPacingRecord(connect_warehouse(url), config.account_id)
            _SQL_RECORDS[(url, config.account_id)] = record
        return record


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse holding the ledger, snapshots and statuses, and the sources' connections.

    Attributes:
        url: ``duckdb:///path.duckdb``, a ``postgresql://`` URL or a libpq ``key=value`` DSN
            (give it as an EnvVar when it carries a password); never shown in a repr.
        sources: Further source connections, name -> URL (values as EnvVars when they carry a
            password; never shown). An audience reads from one with ``source.connection``;
            ``warehouse`` (the default) is the ledger's own warehouse and needs no entry.
        source_timeout_s: Statement timeout of a source read on PostgreSQL.
        duckdb_lock_wait_s: How long a step waits for a DuckDB file that another process
            (another run) holds: DuckDB admits one writing process per file, and each step
            holds it only while it runs, so concurrent runs take turns instead of failing.
    """

    url: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        repr=False,
        description="duckdb:///file.duckdb or postgresql://user:pass@host/db",
    )
    sources: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Source connection name -> URL, for audiences whose source.connection "
        "is not 'warehouse'",
    )
    source_timeout_s: float = Field(
        default=300.0, gt=0, description="Statement timeout of a source read (PostgreSQL)"
    )
    duckdb_lock_wait_s: float = Field(
        default=1800.0,
        ge=0,
        description="Seconds to wait for a DuckDB file held by another run (0: fail at once)",
    )

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        """Open the warehouse for the duration of a ``with`` block."""
        warehouse = self._connect(self.url)
        try:
            yield warehouse
        finally:
            warehouse.close()

    @contextmanager
    def open_source(self, connection: str, ledger: Warehouse) -> Iterator[Warehouse]:
        """The warehouse an audience's ``source.connection`` names, for a ``with`` block.

        Args:
            connection: ``warehouse`` (then ``ledger`` itself) or a key of ``sources``.
            ledger: The open ledger warehouse.

        Raises:
            KeyError: The connection is not configured (names it, never a URL).
        """
        if connection == LEDGER_CONNECTION:
            yield ledger
            return
        if connection not in self.sources:
            raise KeyError(f"source connection {connection!r} is not configured")
        source = self._connect(self.sources[connection])
        try:
            yield source
        finally:
            source.close()

    def connection_names(self) -> list[str]:
        """Every connection an audience may name: ``warehouse`` and the ``sources`` keys."""
        return [LEDGER_CONNECTION, *sorted(self.sources)]

    def unknown_connections(self, audiences: Iterable[AudienceConfig]) -> dict[str, str]:
        """Audience name -> the connection it names that is not configured."""
        known = set(self.connection_names())
        return {a.name: a.source.connection for a in audiences if a.source.connection not in known}

    def _connect(self, url: str) -> Warehouse:
        return connect_warehouse(
            url, source_timeout_s=self.source_timeout_s, lock_wait_s=self.duckdb_lock_wait_s
        )

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced, safe for logs and metadata."""
        return redact_url(self.url)

    def redacted_source_url(self, connection: str) -> str:
        """The URL of a source connection with any password replaced."""
        if connection == LEDGER_CONNECTION:
            return self.redacted_url
        return redact_url(self.sources[connection])
