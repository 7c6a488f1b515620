"""The linear probe: standardised embeddings, then L2-regularised logistic regression.

One binary probe per finding. The probe is deliberately simple, because the forecast is about
what a *linear* read-out of a frozen encoder can reach.

Regularisation
--------------
Features are standardised (zero mean, unit variance per dimension, computed on the training
rows). The L2 strength is scikit-learn's ``C`` applied to the *summed* log-loss, so with a fixed
``C`` the penalty weighs relatively more when there are few labels -- the usual 1/n shrinkage
that keeps a probe on 30 labels from memorising them. The default ``C = 1 / sqrt(d)`` (d: the
embedding dimension) keeps the penalty comparable across encoders of different widths: the
squared norm of a standardised embedding grows like d. ``class_weight="balanced"`` reweights the
classes so that a rare finding is not ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
import warnings

__all__ = ["LinearProbe", "fit_probe", "default_C", "check_embeddings"]

# Smallest per-dimension standard deviation used when standardising (constant columns).
_MIN_SCALE = 1e-8
# lbfgs stops at this tolerance; AUC does not move at tighter ones.
_TOL = 1e-4
_MAX_ITER = 300


def default_C(n_features: int) -> float:
    """Return the default inverse L2 strength for embeddings of width ``n_features``."""
    return 1.0 / math.sqrt(max(int(n_features), 1))


def check_embeddings(X: Any, y: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate embeddings and optional binary labels.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite embeddings.
    y : array-like of shape (n_samples,), optional
        Labels, each 0 or 1 (booleans accepted).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int8, or None
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError("X has no features (shape {X.shape})".format(X=X))
    if not np.all(np.isfinite(X)):
        bad = int(np.count_nonzero(~np.isfinite(X).all(axis=1)))
        raise ValueError(f"X has non-finite values (NaN or inf) in {bad} row(s)")
    if y is None:
        return X, None
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or y_arr.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got shape {y_arr.shape}")
    if y_arr.dtype.kind == "f" and not np.all(np.isfinite(y_arr)):
        raise ValueError("y has NaN or inf values; labels must be 0 or 1")
    values = set(np.unique(y_arr).tolist())
    if not values <= {0, 1, True, False}:
        shown = sorted(values - {0, 1}, key=str)[:5]
        raise ValueError(f"y must hold only 0 and 1, found {shown}")
    return X, y_arr.astype(np.int8)


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """A fitted binary probe: ``sigmoid(((x - mean_) / scale_) @ coef_ + intercept_)``.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation learned on the training rows.
    coef_ : ndarray of shape (n_features,)
        Weights on the standardised features.
    intercept_ : float
    C : float
        Inverse L2 strength it was trained with.
    n_train_ : int
        Number of labeled rows it was trained on.
    """

    mean_: np.ndarray
    scale_: np.ndarray
    coef_: np.ndarray
    intercept_: float
    C: float
    n_train_: int

    @property
    def n_features(self) -> int:
        return int(self.coef_.shape[0])

    def decision_function(self, X: Any) -> np.ndarray:
        """Return the logit of the positive class, shape (n_samples,)."""
        X, _ = check_embeddings(X)
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} features, the probe was trained on {self.n_features}")
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Return the probability of the positive class, shape (n_samples,)."""
        z = self.decision_function(X)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def to_dict(self) -> dict:
        """Return a JSON-safe dict; :meth:`from_dict` restores the probe exactly."""
        return {
            "kind": "linear_probe",
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": float(self.intercept_),
            "C": float(self.C),
            "n_train": int(self.n_train_),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LinearProbe":
        """Rebuild a probe from :meth:`to_dict` output."""
        try:
            probe = cls(
                mean_=np.asarray(data["mean"], dtype=np.float64),
                scale_=np.asarray(data["scale"], dtype=np.float64),
                coef_=np.asarray(data["coef"], dtype=np.float64),
                intercept_=float(data["intercept"]),
                C=float(data["C"]),
                n_train_=int(data["n_train"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a stored linear probe: {exc}") from exc
        if not (probe.mean_.shape == probe.scale_.shape == probe.coef_.shape) or probe.coef_.ndim != 1:
            raise ValueError("stored linear probe has arrays of mismatched shapes")
        return probe


def fit_probe(X: Any, y: Any, C: float | None = None, seed: int = 0) -> LinearProbe:
    """Fit a standardised, L2-regularised, class-balanced logistic-regression probe.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        0/1 labels; both classes must be present.
    C : float, optional
        Inverse L2 strength on the summed log-loss; default :func:`default_C`.
    seed : int
        Seed for the solver (lbfgs is deterministic; kept for reproducibility of variants).

    Returns
    -------
    LinearProbe
    """
    X, y = check_embeddings(X, y)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        missing = "positive" if n_pos == 0 else "negative"
        raise ValueError(f"cannot fit a probe: no {missing} labels among {len(y)}")
    C = default_C(X.shape[1]) if C is None else float(C)
    if not (C > 0 and math.isfinite(C)):
        raise ValueError(f"C must be a positive finite number, got {C!r}")
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale < _MIN_SCALE, 1.0, scale)
    Z = (X - mean) / scale
    model = LogisticRegression(
        C=C, class_weight="balanced", solver="lbfgs", tol=_TOL, max_iter=_MAX_ITER, random_state=seed
    )
    with warnings.catch_warnings():
        # A probe a few lbfgs steps short of the optimum ranks images the same way.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(Z, y)
    return LinearProbe(
        mean_=mean,
        scale_=scale,
        coef_=model.coef_[0].astype(np.float64),
        intercept_=float(model.intercept_[0]),
        C=C,
        n_train_=int(len(y)),
    )
