"""Identity preparation: vectorized normalization, dedupe and conflict detection in pandas.

Pure functions of DataFrames: no I/O, no network, no Dagster. Every input row ends either in a
participant or in quarantine with a reason.
"""
