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
from typing import Any, overload

import numpy as np
from scipy.optimize import minimize

__all__ = ["LinearProbe", "fit_probe", "default_C", "check_embeddings", "stratified_fold_ids", "cross_fitted"]

# Smallest per-dimension standard deviation used when standardising (constant columns).
_MIN_SCALE = 1e-8
# L-BFGS stops when the largest gradient entry falls below _GTOL or the objective's relative
# decrease below _FTOL; the AUC does not move in the fourth decimal at tighter tolerances.
_GTOL = 1e-5
_FTOL = 1e-7
_MAX_ITER = 300


def default_C(n_features: int) -> float:
    """Return the default inverse L2 strength for embeddings of width ``n_features``."""
    return 1.0 / math.sqrt(max(int(n_features), 1))


@overload
def check_embeddings(X: Any, y: None = None) -> tuple[np.ndarray, None]: ...
@overload
def check_embeddings(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]: ...
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
    if not values <= {0, 1}:  # True and False are 1 and 0
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

    def decision_function(self, X: Any, check: bool = True) -> np.ndarray:
        """Return the logit of the positive class, shape (n_samples,).

        ``check=False`` skips validation, for callers that validated ``X`` already.
        """
        if check:
            X, _ = check_embeddings(X)
            if X.shape[1] != self.n_features:
                raise ValueError(f"X has {X.shape[1]} features, the probe was trained on {self.n_features}")
        # Fold the standardisation into the weights: no standardised copy of X is made.
        w = self.coef_ / self.scale_
        return X @ w + (self.intercept_ - float(self.mean_ @ w))

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


def fit_probe(X: Any, y: Any, C: float | None = None, seed: int = 0, check: bool = True) -> LinearProbe:
    """Fit a standardised, L2-regularised, class-balanced logistic-regression probe.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        0/1 labels; both classes must be present.
    C : float, optional
        Inverse L2 strength on the summed log-loss; default :func:`default_C`.
    seed : int
        Accepted for symmetry with the other seeded functions; L-BFGS from zero is
        deterministic, so the fit does not depend on it.
    check : bool
        Validate ``X`` and ``y`` (callers that already did may skip it).

    Returns
    -------
    LinearProbe
    """
    if check:
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
    # float32 halves the cost of the two matrix-vector products per L-BFGS step.
    coef, intercept = _logistic_regression(((X - mean) / scale).astype(np.float32), y, C)
    return LinearProbe(mean_=mean, scale_=scale, coef_=coef, intercept_=intercept, C=C, n_train_=int(len(y)))


def _logistic_regression(Z: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """Minimise ``C * sum_i s_i * log(1 + exp(-t_i (z_i . w + b))) + ||w||^2 / 2``.

    ``t_i = +-1`` and ``s_i = n / (2 n_class)`` (scikit-learn's ``class_weight="balanced"``):
    the objective of ``LogisticRegression(C=C, class_weight="balanced")``, solved by scipy's
    L-BFGS directly, which avoids scikit-learn's per-fit overhead (about 10x faster on the
    small problems the learning curve solves by the dozen; the tests check both agree).
    """
    n, d = Z.shape
    n_pos = float(y.sum())
    sample_weight = np.where(y == 1, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))
    sign = 2.0 * y - 1.0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        margin = sign * ((Z @ w.astype(Z.dtype)).astype(np.float64) + b)
        loss = C * float(sample_weight @ np.logaddexp(0.0, -margin)) + 0.5 * float(w @ w)
        g = -C * sign * sample_weight * np.exp(-np.logaddexp(0.0, margin))  # d loss / d z
        grad_w = (Z.T @ g.astype(Z.dtype)).astype(np.float64) + w
        return loss, np.concatenate([grad_w, [g.sum()]])

    result = minimize(
        objective,
        np.zeros(d + 1),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": _GTOL, "ftol": _FTOL, "maxiter": _MAX_ITER},
    )
    return result.x[:d].copy(), float(result.x[d])


def stratified_fold_ids(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold (0 to ``k - 1``) of each row of a shuffled stratified ``k``-fold split of 0/1 labels
    ``y``: each class is shuffled with ``rng`` (class 0 first) and dealt round the folds."""
    fold = np.empty(len(y), dtype=np.int64)
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % k
    return fold


def cross_fitted(
    X: np.ndarray, y: np.ndarray, fold: np.ndarray, C: float | None = None, seed: int = 0
) -> tuple[np.ndarray, list[LinearProbe]]:
    """Out-of-fold logits of checked ``(X, y)`` under the fold ids ``fold`` (0 to ``k - 1``, e.g.
    :func:`stratified_fold_ids`), and the ``k`` fold probes, probe ``f`` fitted on the rows
    outside fold ``f`` (each such set must hold both classes)."""
    oof = np.empty(len(y))
    probes = []
    for f in range(int(fold.max()) + 1):
        train = fold != f
        probe = fit_probe(X[train], y[train], C=C, seed=seed, check=False)
        oof[~train] = probe.decision_function(X[~train], check=False)
        probes.append(probe)
    return oof, probes
