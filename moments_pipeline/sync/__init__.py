"""The sync engine: batching, the outbox ledger and exactly-once delivery to a flow.

Plain Python that returns a result: it imports no Dagster and does no logging (a test enforces
both), so it can be driven and tested without an orchestrator.
"""
