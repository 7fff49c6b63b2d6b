"""Identifier graph: rows linked by shared identifiers, split into connected components.

Rows and identifiers are the two node sets of a bipartite graph (an edge per row-identifier
use); ``scipy.sparse.csgraph.connected_components`` labels it in C, so long transitive chains
(a-b, b-c, c-d, ...) cost nothing extra and cannot hit a recursion limit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
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
    graph = coo_matrix(
        (np.ones(len(rows), dtype=np.int8), (rows, identifier_codes + n_rows)),
        shape=(size, size),
    ).tocsr()
    _, labels = connected_components(graph, directed=True, connection="weak")
    return labels[:n_rows]


def distinct_per_group(groups: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Count distinct ``members`` per group label (groups and members are non-negative ints).

    Returns:
        Array indexed by group label (length ``groups.max() + 1``).
    """
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    width = int(members.max()) + 1
    distinct = pd.unique(groups.astype(np.int64) * width + members)
    return np.bincount(distinct // width, minlength=int(groups.max()) + 1)
