"""When labels can support a forecast: the fewest labels, the target AUC's range, and the one
sentence shown while collecting.

Constants and plain functions only (no numpy): the settings, the web process and the
forecasting core all read them from here, so each rule is written once.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MIN_CLASS_LABELS", "MIN_LABELS", "TARGET_AUC_RANGE", "check_target_auc", "collecting_message"]

MIN_LABELS = 30
"""Fewest labels before any forecast is made: below this a 3-size curve is mostly noise."""

MIN_CLASS_LABELS = 8
"""Fewest labels of each class before a forecast (chosen from measured error on synthetic
embeddings: benchmarks/min_per_class.py; README "How far to trust it")."""

TARGET_AUC_RANGE = (0.5, 1.0)
"""Open interval a target AUC must lie in: above chance, below perfect. Every entry point (the
settings, a project's extra_params, ``labelcast simulate --target``, the forecast) checks it with
:func:`check_target_auc`."""


def check_target_auc(value: Any, name: str = "target_auc") -> float:
    """``value`` as a float when it lies in :data:`TARGET_AUC_RANGE`.

    Raises
    ------
    ValueError
        Naming ``name``, the value and the range.
    """
    low, high = TARGET_AUC_RANGE
    try:
        target = float(value)
    except (TypeError, ValueError):
        target = math.nan
    if isinstance(value, bool) or not (low < target < high):
        raise ValueError(f"{name} must be a number strictly between {low:g} and {high:g}, got {value!r}")
    return target


def collecting_message(
    n_labels: int,
    n_positive: int,
    positives_needed: int,
    negatives_needed: int,
    labels_needed: int,
    positive_name: str = "positive",
) -> str:
    """The sentence of every "collecting" state: the labels so far and how many more of which
    class the first forecast needs (``labels_needed``: more labels in all)."""
    wants = []
    if positives_needed:
        wants.append(f"{positives_needed} more {positive_name}")
    if negatives_needed:
        wants.append(f"{negatives_needed} more without {positive_name}")
    if labels_needed > positives_needed + negatives_needed:
        wants.append(f"{labels_needed} more labels in all" if wants else f"{labels_needed} more labels")
    return (
        f"Collecting: {n_labels} labels so far ({n_positive} {positive_name}); "
        f"the forecast starts after {' and '.join(wants)}."
    )
