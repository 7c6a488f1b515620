"""Replay an annotation session on a labeled data set: what would the forecast have said?"""

from __future__ import annotations

from dataclasses import dataclass


from backend.curve import DEFAULT_METHOD
from backend.datasets import LabeledData
from backend.forecast import Forecast, forecast
from backend.learning_curve import cross_validated_auc

__all__ = ["Simulation", "simulate"]

# Repetitions of the 5-fold cross-validation that measures the realised AUC at the end.
FINAL_CV_REPEATS = 5


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

    def to_dict(self) -> dict:
        """The ``--json`` document of ``labelcast simulate``."""
        keys = ("n_labels", "auc", "auc_interval", "plateau", "plateau_interval", "labels_needed",
                "labels_remaining", "labels_remaining_interval", "status", "message")
        checkpoints = []
        for fc in self.forecasts:
            d = fc.to_dict()
            row = {key: d[key] for key in keys}
            predicted = fc.predict_auc(self.n_total)
            row["predicted_auc_at_full"] = predicted
            row["predicted_auc_at_full_interval"] = (
                list(fc.predict_interval(self.n_total)) if predicted is not None else None
            )
            checkpoints.append(row)
        return {
            "checkpoints": checkpoints,
            "final": {"n_labels": self.n_total, "auc": self.final_auc, "auc_interval": list(self.final_interval)},
            "method": self.method,
            "target_auc": self.forecasts[0].target_auc if self.forecasts else None,
        }


def simulate(
    data: LabeledData,
    target_auc: float,
    checkpoints: list[int],
    seed: int = 0,
    method: str = DEFAULT_METHOD,
) -> Simulation:
    """Forecast from the first ``k`` rows of ``data`` for each ``k`` in ``checkpoints``.

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
    forecasts = [
        forecast(data.X[:k], data.y[:k], target_auc, seed=seed, method=method) for k in sorted(set(checkpoints))
    ]
    final = cross_validated_auc(data.X, data.y, seed=seed, repeats=FINAL_CV_REPEATS)
    return Simulation(
        forecasts=forecasts,
        n_total=n,
        final_auc=final.auc,
        final_interval=(final.low, final.high),
        method=method,
    )
