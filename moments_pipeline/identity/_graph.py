"""Identifier graph: rows linked by shared identifiers, split into connected components.

Rows and identifiers are the two node sets of a bipartite graph (an edge per row-identifier
use); ``scipy.sparse.csgraph.connected_components`` labels it in C, so long transitive chains
(a-b, b-c, c-d, ...) cost nothing extra and cannot hit a recursion limit.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components


def row_components(n_rows: int, rows: np.ndarray, identifier_codes: np.ndarray) -> np.ndarray:
    """Label each row with its connected component.

    Args:
        n_rows: Number of rows (row positions are ``0..n_rows-1``).
        rows: Row position of each identifier use.
        identifier_codes: Dense code (``0..m-1``) of the identifier of each use.

    Returns:
        Component label per row position; rows without identifiers are alone.
    """
    n_ids = int(identifier_codes.max()) + 1 if len(identifier_codes) else 0
    size = n_rows + n_ids
    # CSR built directly (rows come sorted from the identifier table), with int32 indices
    # (what the csgraph routines use anyway): no COO round trip, half the footprint.
    index = np.int32 if size < np.iinfo(np.int32).max else np.int64
    if len(rows) > 1 and not bool(np.all(rows[1:] >= rows[:-1])):
        order = np.argsort(rows, kind="stable")
        rows, identifier_codes = rows[order], identifier_codes[order]
    indptr = np.zeros(size + 1, dtype=index)
    np.cumsum(np.bincount(rows, minlength=size), out=indptr[1:])
    graph = csr_matrix(
        (np.ones(len(rows), dtype=np.int8), (identifier_codes + n_rows).astype(index), indptr),
        shape=(size, size),
    )
    _, labels = connected_components(graph, directed=True, connection="weak")
    return labels[:n_rows]


def several_per_group(groups: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Whether each group label holds more than one distinct member (non-negative ints).

    Min and max per group instead of counting distinct pairs: no hash table over the pairs,
    so it stays light for millions of identifier uses.

    Returns:
        Boolean array indexed by group label (length ``groups.max() + 1``).
    """
    if len(groups) == 0:
        return np.zeros(0, dtype=bool)
    size = int(groups.max()) + 1
    dtype = np.int32 if len(members) and members.max() < np.iinfo(np.int32).max else np.int64
    members = members.astype(dtype, copy=False)
    low = np.full(size, np.iinfo(dtype).max, dtype=dtype)
    high = np.full(size, -1, dtype=dtype)
    np.minimum.at(low, groups, members)
    np.maximum.at(high, groups, members)
    return np.greater(high, low)
