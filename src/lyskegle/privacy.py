"""Small-cell suppression: the one function every shown or logged table goes through.

A count, rate or mean computed over fewer than ``min_cell`` persons is suppressed (set to missing and
flagged). Secondary suppression: where rows of a table add up to a total that is shown, a single
suppressed row (or suppressed rows that together hold fewer than ``min_cell`` persons) could be
recovered by subtraction, so the smallest remaining rows of that table are suppressed too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SUPPRESSED_FLAG = "suppressed"


def suppress_small_cells(
    table: pd.DataFrame,
    count_column: str,
    min_cell: int,
    value_columns: Sequence[str] = (),
    total_groups: Sequence[str] | None = (),
) -> pd.DataFrame:
    """Copy of ``table`` with small cells suppressed.

    ``count_column`` holds the number of persons behind each row; it and every column in
    ``value_columns`` become missing where the row is suppressed, and a boolean column
    ``suppressed`` says which rows were. ``total_groups`` names the columns that define the tables
    whose rows add up to a shown total (empty: the whole frame is one table; None: no totals are
    shown, so no secondary suppression).
    """
    if count_column not in table.columns:
        raise KeyError(f"suppress_small_cells: count column '{count_column}' is not in the table")
    missing = [c for c in value_columns if c not in table.columns]
    if missing:
        raise KeyError(f"suppress_small_cells: value columns {missing} are not in the table")

    counts = pd.to_numeric(table[count_column], errors="raise").to_numpy(dtype="float64")
    suppressed = ~(counts >= min_cell)  # NaN counts are suppressed too
    if total_groups is not None:
        keys = (
            table[list(total_groups)].astype("string").agg("\x1f".join, axis=1)
            if total_groups else pd.Series("", index=table.index)
        )
        for _, positions in pd.Series(np.arange(len(table)), index=table.index).groupby(keys.to_numpy()):
            _secondary(counts, suppressed, positions.to_numpy(), min_cell)

    out = table.copy()
    for column in (count_column, *value_columns):
        out[column] = out[column].astype("Float64") if _is_numeric(out[column]) else out[column]
        out.loc[suppressed, column] = pd.NA
    out[SUPPRESSED_FLAG] = suppressed
    return out


def _secondary(counts: np.ndarray, suppressed: np.ndarray, positions: np.ndarray, min_cell: int) -> None:
    """Suppress the smallest open cells of one table until no suppressed cell can be recovered."""
    while True:
        hidden = positions[suppressed[positions]]
        open_ = positions[~suppressed[positions]]
        hidden_total = np.nansum(counts[hidden])
        exposed = len(hidden) == 1 or (len(hidden) > 0 and hidden_total < min_cell)
        if not exposed or len(open_) == 0:
            return
        suppressed[open_[np.argmin(counts[open_])]] = True


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def is_shown(persons: int | float, min_cell: int) -> bool:
    """True when a figure over ``persons`` persons may be shown."""
    return bool(persons >= min_cell)
