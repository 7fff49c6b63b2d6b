"""The ledger on a shared SQL database, through the ``Warehouse`` protocol.

Portable between DuckDB and PostgreSQL: plain types (TEXT, BIGINT, INTEGER, BOOLEAN,
TIMESTAMP), ``?`` placeholders, no dialect-specific upsert. Bulk writes go through
``write_frame`` into a uniquely named staging table, then one set-based statement, so runs on
different machines never share a staging table. Upserts are DELETE-then-INSERT in one
transaction.

Tables (names share a configurable prefix, ``moments_sync_`` by default):

- ``outbox``: one row per batch (state, operationId, reason).
- ``batch_members``: every identifier of every participant of every batch; the identity ledger
  is these rows for batches whose body may have left (SENDING or later).
- ``participant_status``: each person's last status per flow; it outlives Infobip's 30 days.
- ``quarantine``: input rows preparation refused, with reasons.
- ``callbacks``: reports received on notifyUrl, raw, keyed by (callbackData, operationId); only
  those whose callbackData is a batch and whose operationId can be its own (``accept_callback``).
- ``run_lease``: one row per lease scope: the run holding it and until when (epoch seconds).

The writes that keep concurrent runs apart are compare-and-sets decided by the database
(never read-then-write in Python): the claim (``PLANNED -> CLAIMED``), the SENDING mark
(``... WHERE state IN (expected) AND claimed_by = ?``), both with the row count checked, and
the lease (``INSERT ... ON CONFLICT DO NOTHING``, then a conditional ``UPDATE`` that takes
over only an expired lease). Each is one statement, atomic on DuckDB and on PostgreSQL under
READ COMMITTED. Every other outbox write is conditional on the states the transition table
(``_states``) allows before the new one, so an illegal change never lands.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from moments_pipeline.identity import rules

from ._columns import BatchMembers
from ._ledger_outbox import OutboxWrites
from ._protocols import (
    BatchMember,
    BatchRecord,
    BatchState,
    CallbackVerdict,
    Lease,
    OperationReport,
    QuarantineRow,
    StatusRow,
)
from ._removal_ledger import RemovalLedger
from ._reports import IN_FLOW_REASON
from ._states import (
    MAY_HAVE_LEFT,
    IllegalTransition,
    check_status_transition,
    status_pairs_sql,
)

if TYPE_CHECKING:  # the protocol only; the implementation is chosen by the caller
    from moments_pipeline.warehouse import Warehouse

_CHUNK = 500
"""Parameters per IN (...) list: far below every backend's limit."""
_WHOLE_FLOW_READ_AFTER = 100
"""IN (...) queries after which reading a flow's statuses whole is cheaper (see ``statuses``)."""

MAX_PENDING_CALLBACKS = 4
"""Reports kept for a batch whose operationId is not recorded yet: its send and a re-send give
one each; beyond a few, they can only be forged."""

_SENT_OR_LATER = tuple(sorted(s.value for s in MAY_HAVE_LEFT))


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


#: Advisory lock key of ``ensure_schema`` on PostgreSQL (any fixed bigint; "mpledger").
_SCHEMA_LOCK_KEY = 0x6D706C6564676572


class SqlLedgerStore(OutboxWrites, RemovalLedger):
    """``LedgerStore`` over any ``Warehouse`` (DuckDB file or PostgreSQL database).

    Args:
        warehouse: an open warehouse; all machines running syncs must see the same database.
        table_prefix: prefix of the ledger's table names (a plain SQL identifier).
    """

    def __init__(self, warehouse: Warehouse, *, table_prefix: str = "moments_sync_") -> None:
        if not table_prefix.replace("_", "a").isalnum() or not table_prefix[:1].isalpha():
            raise ValueError(
                f"table_prefix must be a plain SQL identifier prefix: {table_prefix!r}"
            )
        self.warehouse = warehouse
        p = table_prefix
        self.outbox = f"{p}outbox"
        self.members = f"{p}batch_members"
        self.status = f"{p}participant_status"
        self.quarantine_table = f"{p}quarantine"
        self.callbacks_table = f"{p}callbacks"
        self.lease_table = f"{p}run_lease"
        self._prefix = p

    def __repr__(self) -> str:
        return f"SqlLedgerStore(prefix={self._prefix!r}, warehouse={self.warehouse!r})"

    # -- schema -------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the ledger's tables and indexes when missing."""
        ddl = [
            f"""CREATE TABLE IF NOT EXISTS {self.outbox} (
                batch_id TEXT PRIMARY KEY, audience TEXT NOT NULL, partition_key TEXT NOT NULL,
                campaign_id BIGINT NOT NULL, attempt INTEGER NOT NULL, size INTEGER NOT NULL,
                state TEXT NOT NULL, operation_id TEXT, reason TEXT,
                resent BOOLEAN NOT NULL DEFAULT FALSE, claimed_by TEXT, resent_at TIMESTAMP,
                updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""",
            f"""CREATE TABLE IF NOT EXISTS {self.members} (
                batch_id TEXT NOT NULL, person_key TEXT NOT NULL, kind TEXT NOT NULL,
                identifier TEXT NOT NULL, is_identify_by BOOLEAN NOT NULL,
                profile_anchor TEXT)""",
            f"""CREATE TABLE IF NOT EXISTS {self.status} (
                campaign_id BIGINT NOT NULL, person_key TEXT NOT NULL, audience TEXT NOT NULL,
                partition_key TEXT NOT NULL, batch_id TEXT, operation_id TEXT,
                status TEXT NOT NULL, error_reason TEXT, delivered BOOLEAN NOT NULL,
                updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""",
            f"""CREATE TABLE IF NOT EXISTS {self.quarantine_table} (
                audience TEXT NOT NULL, partition_key TEXT NOT NULL, row_id TEXT NOT NULL,
                reason TEXT NOT NULL, detail TEXT,
                recorded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""",
            f"""CREATE TABLE IF NOT EXISTS {self.callbacks_table} (
                callback_data TEXT NOT NULL, operation_id TEXT NOT NULL,
                campaign_id BIGINT NOT NULL, payload TEXT NOT NULL,
                received_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""",
            f"""CREATE TABLE IF NOT EXISTS {self.lease_table} (
                scope TEXT PRIMARY KEY, holder TEXT NOT NULL, description TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {self.outbox}_scope "
            f"ON {self.outbox} (audience, partition_key, campaign_id)",
            f"CREATE INDEX IF NOT EXISTS {self.callbacks_table}_key "
            f"ON {self.callbacks_table} (callback_data)",
            *self.removal_ddl(),  # mirror membership (``_removal_ledger``)
        ]
        # A ledger written by an earlier release gains the columns added since (idempotent; the
        # defaults read as that release meant: NULL anchor = the person key, no claimant).
        added = (
            (self.members, "profile_anchor", "TEXT"),
            (self.outbox, "claimed_by", "TEXT"),
            (self.outbox, "resent_at", "TIMESTAMP"),
        )
        with self.warehouse.transaction():
            if self.warehouse.dialect == "postgres":
                # Concurrent runs: two sessions' CREATE ... IF NOT EXISTS race on pg_type;
                # one schema check at a time, until this transaction ends.
                self.warehouse.execute("SELECT pg_advisory_xact_lock(?)", [_SCHEMA_LOCK_KEY])
            for statement in ddl:
                self.warehouse.execute(statement)
            # ALTER TABLE takes an exclusive lock even when the column exists, and readers of
            # the ledger (a check, a dashboard) holding a share lock on another table then
            # deadlock with it: alter only a ledger that lacks the column.
            for table, column, sql_type in added:
                if column not in self._columns(table):
                    self.warehouse.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")

    def _columns(self, table: str) -> set[str]:
        rows = self.warehouse.fetch_all(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [table],
        )
        return {str(r[0]) for r in rows}

    # -- outbox -------------------------------------------------------------------------------

    _BATCH_COLUMNS = (
        "batch_id, audience, partition_key, campaign_id, attempt, size, state, "
        "operation_id, reason, resent, claimed_by"
    )

    def batches(self, audience: str, partition_key: str, campaign_id: int) -> list[BatchRecord]:
        """Every outbox batch of one (audience, partition, flow)."""
        rows = self.warehouse.fetch_all(
            f"SELECT {self._BATCH_COLUMNS} FROM {self.outbox} "  # noqa: S608 - names are fixed
            "WHERE audience = ? AND partition_key = ? AND campaign_id = ? ORDER BY batch_id",
            [audience, partition_key, campaign_id],
        )
        return [
            BatchRecord(
                batch_id=r[0],
                audience=r[1],
                partition_key=r[2],
                campaign_id=int(r[3]),
                attempt=int(r[4]),
                size=int(r[5]),
                state=BatchState(r[6]),
                operation_id=r[7],
                reason=r[8],
                resent=bool(r[9]),
                claimed_by=r[10],
            )
            for r in rows
        ]

    def batch_members(self, batch_ids: Sequence[str]) -> list[BatchMember]:
        """The members of the given batches."""
        members: list[BatchMember] = []
        for chunk in _chunks(list(batch_ids)):
            rows = self.warehouse.fetch_all(
                f"SELECT batch_id, person_key, kind, identifier, is_identify_by, "  # noqa: S608
                f"profile_anchor FROM {self.members} WHERE batch_id IN ({_marks(len(chunk))})",
                list(chunk),
            )
            members.extend(BatchMember(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows)
        return members

    def plan_batches(self, batches: Sequence[BatchRecord], members: Sequence[BatchMember]) -> None:
        """Insert PLANNED batches and their members in one transaction."""
        batch_frame = pd.DataFrame(
            {
                "batch_id": [b.batch_id for b in batches],
                "audience": [b.audience for b in batches],
                "partition_key": [b.partition_key for b in batches],
                "campaign_id": pd.array([b.campaign_id for b in batches], dtype="int64"),
                "attempt": pd.array([b.attempt for b in batches], dtype="int64"),
                "size": pd.array([b.size for b in batches], dtype="int64"),
                "state": [b.state.value for b in batches],
                "operation_id": pd.array([b.operation_id for b in batches], dtype=object),
                "reason": pd.array([b.reason for b in batches], dtype=object),
                "resent": pd.array([b.resent for b in batches], dtype=bool),
                "claimed_by": pd.array([b.claimed_by for b in batches], dtype=object),
            }
        )
        columns = BatchMembers.from_members(members)  # the engine already hands columns
        member_frame = pd.DataFrame(
            {
                "batch_id": columns.batch_ids,
                "person_key": columns.person_keys,
                "kind": columns.kinds,
                "identifier": columns.identifiers,
                "is_identify_by": pd.array(columns.is_identify_by, dtype=bool),
                "profile_anchor": pd.array(columns.anchors, dtype=object),
            }
        )
        with self.warehouse.transaction():
            self.warehouse.write_frame(self.outbox, batch_frame)
            self.warehouse.write_frame(self.members, member_frame)

    # -- statuses -----------------------------------------------------------------------------

    _STATUS_COLUMNS = (
        "campaign_id, person_key, audience, partition_key, batch_id, operation_id, "
        "status, error_reason, delivered"
    )

    def upsert_statuses(self, rows: Sequence[StatusRow]) -> None:
        """Insert or replace statuses keyed by (campaign_id, person_key).

        Every change must be in ``_states.STATUS_TRANSITIONS``; checked set-based in the
        database against the stored statuses (millions of rows), and ``IllegalTransition``
        rolls the whole call back.
        """
        if not rows:
            return
        for status in {r.status for r in rows}:
            check_status_transition(None, status)  # a known status at all
        frame = pd.DataFrame(
            {
                "campaign_id": pd.array([r.campaign_id for r in rows], dtype="int64"),
                "person_key": [r.person_key for r in rows],
                "audience": [r.audience for r in rows],
                "partition_key": [r.partition_key for r in rows],
                "batch_id": pd.array([r.batch_id for r in rows], dtype=object),
                "operation_id": pd.array([r.operation_id for r in rows], dtype=object),
                "status": [r.status for r in rows],
                "error_reason": pd.array([r.error_reason for r in rows], dtype=object),
                "delivered": pd.array([r.delivered for r in rows], dtype=bool),
            }
        ).drop_duplicates(subset=["campaign_id", "person_key"], keep="last")
        stage = f"{self._prefix}stage_{uuid.uuid4().hex[:16]}"
        wh = self.warehouse
        try:
            with wh.transaction():
                wh.write_frame(stage, frame)
                self._check_status_changes(stage)
                wh.execute(
                    f"DELETE FROM {self.status} WHERE EXISTS (SELECT 1 FROM {stage} s "  # noqa: S608
                    f"WHERE s.campaign_id = {self.status}.campaign_id "
                    f"AND s.person_key = {self.status}.person_key)"
                )
                wh.execute(
                    f"INSERT INTO {self.status} ({self._STATUS_COLUMNS}) "  # noqa: S608
                    f"SELECT {self._STATUS_COLUMNS} FROM {stage}"
                )
        finally:
            wh.execute(f"DROP TABLE IF EXISTS {stage}")

    def _check_status_changes(self, stage: str) -> None:
        allowed = status_pairs_sql()
        bad = self.warehouse.fetch_all(
            f"SELECT t.person_key, t.status, s.status FROM {self.status} t "  # noqa: S608
            f"JOIN {stage} s ON s.campaign_id = t.campaign_id AND s.person_key = t.person_key "
            f"WHERE t.status || '>' || s.status NOT IN ({_marks(len(allowed))}) LIMIT 1",
            allowed,
        )
        if bad:
            key, old, new = bad[0]
            raise IllegalTransition("participant", str(old), str(new), str(key))

    def statuses(
        self, campaign_id: int, person_keys: Iterable[str] | None = None
    ) -> list[StatusRow]:
        """Stored statuses of a flow, optionally of some persons only."""
        base = f"SELECT {self._STATUS_COLUMNS} FROM {self.status} WHERE campaign_id = ?"  # noqa: S608
        if person_keys is None:
            rows = self.warehouse.fetch_all(base + " ORDER BY person_key", [campaign_id])
            return [self._status_row(r) for r in rows]
        wanted = sorted(set(person_keys))
        if len(wanted) > _WHOLE_FLOW_READ_AFTER * _CHUNK:
            # Each IN (...) query scans the flow's statuses, so past a few hundred of them one
            # read of the whole flow, filtered here, is faster (1M keys: 23 s -> 2.6 s on DuckDB).
            keep = set(wanted)
            rows = [
                r
                for r in self.warehouse.fetch_all(base + " ORDER BY person_key", [campaign_id])
                if r[1] in keep
            ]
        else:
            rows = []
            for chunk in _chunks(wanted):
                rows += self.warehouse.fetch_all(
                    base + f" AND person_key IN ({_marks(len(chunk))})", [campaign_id, *chunk]
                )
        return [self._status_row(r) for r in rows]

    @staticmethod
    def _status_row(r: tuple[Any, ...]) -> StatusRow:
        return StatusRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]))

    def delivered_person_keys(self, campaign_id: int) -> set[str]:
        """Person keys in the flow: ACCEPTED, delivered, or REJECTED_PERSON_IN_FLOW."""
        rows = self.warehouse.fetch_all(
            f"SELECT person_key FROM {self.status} WHERE campaign_id = ? AND "  # noqa: S608
            "(status = 'ACCEPTED' OR delivered OR error_reason = ?)",
            [campaign_id, IN_FLOW_REASON],
        )
        return {r[0] for r in rows}

    # -- quarantine ---------------------------------------------------------------------------

    def record_quarantine(self, rows: Sequence[QuarantineRow]) -> None:
        """Replace the quarantine record of each (audience, partition) present in ``rows``."""
        scopes = sorted({(r.audience, r.partition_key) for r in rows})
        frame = pd.DataFrame(
            {
                "audience": [r.audience for r in rows],
                "partition_key": [r.partition_key for r in rows],
                "row_id": [r.row_id for r in rows],
                "reason": [r.reason for r in rows],
                "detail": pd.array([r.detail for r in rows], dtype=object),
            }
        )
        with self.warehouse.transaction():
            for audience, partition_key in scopes:
                self.warehouse.execute(
                    f"DELETE FROM {self.quarantine_table} "  # noqa: S608
                    "WHERE audience = ? AND partition_key = ?",
                    [audience, partition_key],
                )
            if len(frame):
                self.warehouse.write_frame(self.quarantine_table, frame)

    def replace_quarantine(
        self, audience: str, partition_key: str, rows: Sequence[QuarantineRow]
    ) -> None:
        """Replace the quarantine record of one (audience, partition), even with no rows.

        Raises:
            ValueError: when a row belongs to another (audience, partition).
        """
        for row in rows:
            if (row.audience, row.partition_key) != (audience, partition_key):
                raise ValueError(
                    f"quarantine row {row.row_id!r} belongs to audience {row.audience!r} "
                    f"partition {row.partition_key!r}, not {audience!r} {partition_key!r}"
                )
        with self.warehouse.transaction():
            self.warehouse.execute(
                f"DELETE FROM {self.quarantine_table} "  # noqa: S608
                "WHERE audience = ? AND partition_key = ?",
                [audience, partition_key],
            )
            if rows:
                self.record_quarantine(rows)

    def quarantine(self, audience: str, partition_key: str) -> list[QuarantineRow]:
        """The quarantine record of one (audience, partition)."""
        rows = self.warehouse.fetch_all(
            f"SELECT audience, partition_key, row_id, reason, detail "  # noqa: S608
            f"FROM {self.quarantine_table} WHERE audience = ? AND partition_key = ? "
            "ORDER BY row_id",
            [audience, partition_key],
        )
        return [QuarantineRow(*r) for r in rows]

    # -- callbacks and identities -------------------------------------------------------------

    def record_callback(self, callback_data: str, report: OperationReport) -> None:
        """Keep a report received on notifyUrl; replaces an earlier copy of the same one."""
        payload = orjson.dumps(report.to_payload()).decode()
        self.record_callback_json(callback_data, report.operation_id, report.campaign_id, payload)

    def accept_callback(
        self, callback_data: str, operation_id: str, campaign_id: int, payload: str
    ) -> CallbackVerdict:
        """Keep a notifyUrl report only if it can be its batch's (see ``CallbackVerdict``).

        The receiver's path: ``payload`` is stored as given (the checked JSON text, no
        per-participant objects built). Unknown callbackData and a known operationId that
        differs store nothing; a batch without an operationId yet keeps at most
        ``MAX_PENDING_CALLBACKS`` reports of other operations (two racing deliveries may pass
        the count together: still a handful of rows per real batch).
        """
        with self.warehouse.transaction():
            rows = self.warehouse.fetch_all(
                f"SELECT campaign_id, operation_id FROM {self.outbox} "  # noqa: S608
                "WHERE batch_id = ?",
                [callback_data],
            )
            if not rows:
                return CallbackVerdict.UNKNOWN
            batch_campaign, known = rows[0]
            if int(batch_campaign) != campaign_id or known not in (None, operation_id):
                return CallbackVerdict.MISMATCH
            if known is None:
                others = self.warehouse.fetch_all(
                    f"SELECT COUNT(*) FROM {self.callbacks_table} "  # noqa: S608
                    "WHERE callback_data = ? AND operation_id <> ?",
                    [callback_data, operation_id],
                )[0][0]
                if int(others) >= MAX_PENDING_CALLBACKS:
                    return CallbackVerdict.MISMATCH
            else:  # the operation is known: reports kept for any other one are of no use now
                self.warehouse.execute(
                    f"DELETE FROM {self.callbacks_table} "  # noqa: S608
                    "WHERE callback_data = ? AND operation_id <> ?",
                    [callback_data, operation_id],
                )
            self._store_callback(callback_data, operation_id, campaign_id, payload)
        return CallbackVerdict.PENDING if known is None else CallbackVerdict.STORED

    def record_callback_json(
        self, callback_data: str, operation_id: str, campaign_id: int, payload: str
    ) -> None:
        """Keep a report given as the spec's FlowParticipantsReportResponse JSON text, unchecked.

        ``payload`` must be what a serializer of the report produced (it is stored as given).
        """
        with self.warehouse.transaction():
            self._store_callback(callback_data, operation_id, campaign_id, payload)

    def _store_callback(
        self, callback_data: str, operation_id: str, campaign_id: int, payload: str
    ) -> None:
        """Replace the report of (callback_data, operation_id); runs inside a transaction."""
        self.warehouse.execute(
            f"DELETE FROM {self.callbacks_table} "  # noqa: S608
            "WHERE callback_data = ? AND operation_id = ?",
            [callback_data, operation_id],
        )
        self.warehouse.execute(
            f"INSERT INTO {self.callbacks_table} "  # noqa: S608
            "(callback_data, operation_id, campaign_id, payload) VALUES (?, ?, ?, ?)",
            [callback_data, operation_id, campaign_id, payload],
        )

    def callbacks(self, callback_data: Sequence[str]) -> dict[str, list[OperationReport]]:
        """Received reports for the given callbackData values, oldest first per key."""
        found: dict[str, list[OperationReport]] = {}
        for chunk in _chunks(list(callback_data)):
            rows = self.warehouse.fetch_all(
                f"SELECT callback_data, payload FROM {self.callbacks_table} "  # noqa: S608
                f"WHERE callback_data IN ({_marks(len(chunk))}) ORDER BY received_at",
                list(chunk),
            )
            for key, payload in rows:
                found.setdefault(key, []).append(
                    OperationReport.from_payload(orjson.loads(payload))
                )
        return found

    def sent_identities(self) -> list[tuple[str, str, str]]:
        """(kind, identifier, person key) of every identifier whose body may have left."""
        states = _marks(len(_SENT_OR_LATER))
        rows = self.warehouse.fetch_all(
            "SELECT DISTINCT m.kind, m.identifier, "  # noqa: S608
            f"COALESCE(m.profile_anchor, m.person_key) FROM {self.members} m "
            f"JOIN {self.outbox} o ON o.batch_id = m.batch_id WHERE o.state IN ({states}) "
            "ORDER BY 1, 2, 3",
            list(_SENT_OR_LATER),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # -- run lease ----------------------------------------------------------------------------

    def acquire_lease(
        self, scope: str, holder: str, *, description: str, now: float, ttl_s: float
    ) -> Lease:
        """Take the lease of ``scope`` if free, expired or already ``holder``'s.

        Returns the lease as it stands afterwards (``holder`` equal to ours: acquired).
        """
        wh, expires = self.warehouse, now + ttl_s
        try:
            inserted = wh.execute(
                f"INSERT INTO {self.lease_table} (scope, holder, description, expires_at) "  # noqa: S608
                "VALUES (?, ?, ?, ?) ON CONFLICT (scope) DO NOTHING",
                [scope, holder, description, expires],
            )
        except Exception:
            # Two connections inserting the scope at once: DuckDB aborts one of them (a write
            # conflict or a duplicate key) instead of doing nothing, possibly before the other
            # has committed. Once the row shows, the conditional UPDATE below decides; a row
            # that never shows means the error was something else.
            if not self._lease_row_appears(scope):
                raise
            inserted = 0
        if inserted != 1:
            wh.execute(
                f"UPDATE {self.lease_table} SET holder = ?, description = ?, "  # noqa: S608
                "expires_at = ? WHERE scope = ? AND (expires_at < ? OR holder = ?)",
                [holder, description, expires, scope, now, holder],
            )
        rows = self._lease_row(scope)
        if not rows:  # released between our two statements: simply try again
            return self.acquire_lease(scope, holder, description=description, now=now, ttl_s=ttl_s)
        r = rows[0]
        return Lease(str(r[0]), str(r[1]), str(r[2]), float(r[3]))

    def _lease_row_appears(self, scope: str, wait_s: float = 2.0) -> bool:
        deadline = time.monotonic() + wait_s
        while not self._lease_row(scope):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _lease_row(self, scope: str) -> list[tuple[Any, ...]]:
        return self.warehouse.fetch_all(
            f"SELECT scope, holder, description, expires_at FROM {self.lease_table} "  # noqa: S608
            "WHERE scope = ?",
            [scope],
        )

    def renew_lease(self, scope: str, holder: str, *, now: float, ttl_s: float) -> bool:
        """Extend ``holder``'s lease; False when another run has it (or nobody does)."""
        changed = self.warehouse.execute(
            f"UPDATE {self.lease_table} SET expires_at = ? "  # noqa: S608
            "WHERE scope = ? AND holder = ?",
            [now + ttl_s, scope, holder],
        )
        return changed == 1

    def release_lease(self, scope: str, holder: str) -> None:
        """Give up ``holder``'s lease of ``scope`` (nothing happens if another run has it)."""
        self.warehouse.execute(
            f"DELETE FROM {self.lease_table} WHERE scope = ? AND holder = ?",  # noqa: S608
            [scope, holder],
        )

    def table_names(self) -> dict[str, str]:
        """The ledger's table names, for readers such as asset checks."""
        return {
            "outbox": self.outbox,
            "batch_members": self.members,
            "participant_status": self.status,
            "quarantine": self.quarantine_table,
            "callbacks": self.callbacks_table,
            "run_lease": self.lease_table,
            **self.removal_table_names(),
        }

    def identifier_conflicts(self, limit: int) -> list[tuple[str, str]]:
        """(kind, comparable identifier) recorded under two or more profiles, at most ``limit``.

        Aggregated in SQL (the ledger may hold millions of identifiers), in the rules'
        comparable form so that two spellings of one e-mail address count as one identifier.
        """
        ident = rules.comparable_sql("m.kind", "m.identifier")
        rows = self.warehouse.fetch_all(
            f"SELECT m.kind, {ident} FROM {self.members} m "  # noqa: S608 - names are fixed
            f"JOIN {self.outbox} o ON o.batch_id = m.batch_id "
            f"WHERE o.state IN ({_marks(len(_SENT_OR_LATER))}) GROUP BY 1, 2 "
            "HAVING COUNT(DISTINCT COALESCE(m.profile_anchor, m.person_key)) > 1 "
            "ORDER BY 1, 2 LIMIT ?",
            [*_SENT_OR_LATER, int(limit)],
        )
        return [(str(kind), str(identifier)) for kind, identifier in rows]
