"""Replay an annotation session on a labeled data set: what would the forecast have said?

At each checkpoint ``k`` the first ``k`` rows of the (replayed) order are the labels and the
rows after them are the project's unlabeled pool: their embeddings are passed to the forecast,
never their labels. :func:`replay_order` reorders a data set as a sampling strategy would have:

``file``
    The file's own row order.
``random``
    A random permutation.
``uncertainty``
    ``START`` random rows, then batches of ``BATCH`` rows whose probe probability (a probe
    trained on the rows so far) is closest to 0.5: least sure first, as sorting the Data
    Manager by LabelCast's score with ``sampling=uncertainty`` gives.
``mixed``
    As ``uncertainty``, but its random start is ``random_start`` rows (the service's
    ``random_start``, default :data:`backend.settings.DEFAULT_RANDOM_START`), and in each batch a
    share ``AUDIT_SHARE`` of the rows is drawn at random from the rows not labeled yet (audit
    rows). As in the service (:mod:`backend.sampling`), the rows drawn at random (the random
    start and the audits) among the first ``k`` labels have selection probability ``(rows drawn
    at random) / n``, a least-sure row 1 (:func:`selection_probabilities`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.curve import DEFAULT_METHOD
from backend.datasets import LabeledData
from backend.forecast import Forecast, forecast
from backend.learning_curve import cross_validated_auc
from backend.probe import fit_probe
from backend.sampling import unsteered_labels
from backend.settings import DEFAULT_RANDOM_START

__all__ = ["Simulation", "simulate", "replay_order", "selection_probabilities", "ORDERS"]

# Repetitions of the 5-fold cross-validation that measures the realised AUC at the end.
FINAL_CV_REPEATS = 5
# Labeling orders replay_order knows.
ORDERS = ("file", "random", "uncertainty", "mixed")
# Random rows labeled before uncertainty sampling starts (``mixed``: ``random_start``).
START = 20
# Rows per batch of uncertainty sampling (one probe refit per batch).
BATCH = 10
# Share of each mixed batch drawn at random (audit rows); the service's default too.
AUDIT_SHARE = 0.2


def replay_order(
    X: np.ndarray,
    y: np.ndarray,
    order: str,
    seed: int = 0,
    n_steps: int | None = None,
    audit_share: float = AUDIT_SHARE,
    random_start: int = DEFAULT_RANDOM_START,
) -> tuple[np.ndarray, np.ndarray]:
    """The order in which a sampling strategy would have labeled the rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Labels, used only as the annotator's answers for rows already chosen.
    order : str
        One of ``ORDERS``.
    n_steps : int, optional
        Rows to order by the strategy; the rest follow in random order (default: all).
    random_start : int
        ``mixed`` only: rows labeled in random order before least-sure-first begins.

    Returns
    -------
    index : ndarray of shape (n_samples,)
        Row indices in labeling order.
    at_random : ndarray of shape (n_samples,), bool
        Whether each position's row was drawn at random (all True for ``random``, all False
        for ``file``; for ``uncertainty`` the first ``START``, for ``mixed`` the first
        ``random_start`` and the audits).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    n = len(y)
    rng = np.random.default_rng(seed)
    if order == "file":
        return np.arange(n), np.zeros(n, dtype=bool)
    perm = rng.permutation(n)
    if order == "random":
        return perm, np.ones(n, dtype=bool)
    n_steps = n if n_steps is None else min(int(n_steps), n)
    start = min(START if order == "uncertainty" else max(int(random_start), 0), n)
    chosen = list(perm[:start])
    drawn = [True] * start
    remaining = np.ones(n, dtype=bool)
    remaining[chosen] = False
    n_audit = int(round(BATCH * audit_share)) if order == "mixed" else 0
    while len(chosen) < n_steps and remaining.any():
        rest = np.flatnonzero(remaining)
        take = min(BATCH, len(rest), n_steps - len(chosen))
        audits = min(n_audit, take)
        picked = list(rng.choice(rest, audits, replace=False)) if audits else []
        drawn += [True] * audits
        remaining[picked] = False
        rest = np.flatnonzero(remaining)
        labeled = np.asarray(chosen + picked)
        if take > audits and len(rest):
            if 0 < y[labeled].sum() < len(labeled):
                margin = np.abs(fit_probe(X[labeled], y[labeled], check=False).decision_function(X[rest], check=False))
                least_sure = rest[np.argsort(margin, kind="stable")[: take - audits]]
            else:
                least_sure = rng.choice(rest, take - audits, replace=False)
            picked += list(least_sure)
            drawn += [False] * len(least_sure)
            remaining[least_sure] = False
        chosen += picked
    rest = np.flatnonzero(remaining)
    tail = rng.permutation(rest)
    index = np.asarray(chosen + list(tail), dtype=np.int64)
    return index, np.asarray(drawn + [True] * len(tail), dtype=bool)


def selection_probabilities(at_random: np.ndarray, n_total: int) -> np.ndarray:
    """Selection probability of each of the labeled rows (shape (k,)), given which were drawn at
    random: ``at_random.sum() / n_total`` for those, 1 for the others."""
    at_random = np.asarray(at_random, dtype=bool)
    return np.where(at_random, at_random.sum() / max(int(n_total), 1), 1.0)


@dataclass(frozen=True, eq=False)
class Simulation:
    """Forecasts made at each checkpoint, and the AUC finally realised with every row.

    Attributes
    ----------
    forecasts : list of Forecast
        One per checkpoint, made from the first ``k`` rows only.
    n_total : int
        Rows in the data set.
    final_auc, final_interval :
        Realised AUC with all rows (repeated 5-fold cross-validation) and its interval.
    method : str
    """

    forecasts: list[Forecast]
    n_total: int
    final_auc: float
    final_interval: tuple[float, float]
    method: str
    order: str = "file"

    def to_dict(self) -> dict:
        """The ``--json`` document of ``labelcast simulate``."""
        keys = (
            "n_labels",
            "auc",
            "auc_interval",
            "plateau",
            "plateau_interval",
            "labels_needed",
            "labels_remaining",
            "labels_remaining_interval",
            "reach_share",
            "status",
            "message",
        )
        optional = ("selection_bias", "raw")
        checkpoints = []
        for fc in self.forecasts:
            d = fc.to_dict()
            row = {key: d[key] for key in keys}
            row.update({key: d[key] for key in optional if key in d})
            row["corrected"] = fc.corrected
            row["raw_predicted_auc_at_full"] = fc.predict_raw_auc(self.n_total)
            row["predicted_auc_at_full"] = fc.predict_auc(self.n_total)
            interval = fc.predict_interval(self.n_total)  # None exactly when the AUC is
            row["predicted_auc_at_full_interval"] = list(interval) if interval is not None else None
            checkpoints.append(row)
        return {
            "checkpoints": checkpoints,
            "final": {"n_labels": self.n_total, "auc": self.final_auc, "auc_interval": list(self.final_interval)},
            "method": self.method,
            "order": self.order,
            "target_auc": self.forecasts[0].target_auc if self.forecasts else None,
        }


def simulate(
    data: LabeledData,
    target_auc: float,
    checkpoints: list[int],
    seed: int = 0,
    method: str = DEFAULT_METHOD,
    order: str = "file",
    use_pool: bool = True,
    random_start: int = DEFAULT_RANDOM_START,
) -> Simulation:
    """Forecast from the first ``k`` rows of ``data`` for each ``k`` in ``checkpoints``.

    The rows are first put in ``order`` (:func:`replay_order`); the rows after ``k`` are the
    unlabeled pool of the forecast at ``k`` (``use_pool=False``: no pool, as before). Where
    the order was LabelCast's (``mixed``, with its random start of ``random_start`` rows), the
    selection probabilities go with the labels.

    Raises
    ------
    ValueError
        A checkpoint below 1 or above the number of rows, or no checkpoints.
    """
    n = len(data.y)
    if not checkpoints:
        raise ValueError("no checkpoints given")
    bad = [k for k in checkpoints if not 1 <= k <= n]
    if bad:
        raise ValueError(f"checkpoints must lie between 1 and {n} (rows in {data.source}), got {bad}")
    index, at_random = replay_order(
        data.X, data.y, order, seed=seed, n_steps=max(checkpoints), random_start=random_start
    )
    X, y = data.X[index], data.y[index]
    forecasts = []
    for k in sorted(set(checkpoints)):
        pool = X[k:] if use_pool and k < n else None
        known = selection_probabilities(at_random[:k], n) if order == "mixed" else None
        unsteered = unsteered_labels(order, k, random_start, uncertainty_start=START)
        forecasts.append(
            forecast(
                X[:k],
                y[:k],
                target_auc,
                seed=seed,
                method=method,
                pool=pool,
                selection_prob=known,
                project_size=n,
                unsteered=unsteered,
            )
        )
    final = cross_validated_auc(data.X, data.y, seed=seed, repeats=FINAL_CV_REPEATS)
    return Simulation(
        forecasts=forecasts,
        n_total=n,
        final_auc=final.auc,
        final_interval=(final.low, final.high),
        method=method,
        order=order,
    )
