"""How few labels of the rarer class can the forecast start from? Measured, not guessed.

Synthetic embeddings only (the real TB sets stay untouched by tuning): Gaussian embeddings with
a low-rank class signal and 8 % label noise, as in ``forecast_accuracy.py``. For each count
``k`` of the rarer class among the first 50 labels (prevalence ``k / 50``), ``--reps`` label
pools of 50 are drawn with exactly ``k`` positives; the forecast made from them (minimum per
class lowered to 4 so that every pool is forecast) predicts the AUC at 400 labels of the same
prevalence, against the truth measured on 20,000 held-out rows (10 probes trained on fresh
400-label samples). Prints the error per ``k``; ``MIN_CLASS_LABELS`` in
``backend/learning_curve.py`` is the smallest ``k`` whose error is within 1.5x of the error
with plenty of both classes (25 of 50).

    python benchmarks/min_per_class.py --reps 30
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.forecast import forecast  # noqa: E402
from backend.metrics import roc_auc  # noqa: E402
from backend.probe import fit_probe  # noqa: E402

HORIZON = 400


def make_draw(d, rng, rank=8, shift=0.9, flip=0.08):
    basis = rng.normal(size=(rank, d))

    def draw(m, n_pos):
        y = np.zeros(m, dtype=int)
        y[rng.choice(m, n_pos, replace=False)] = 1
        z = rng.normal(size=(m, rank)) + shift * y[:, None] * np.linspace(1, 0.2, rank)[None, :]
        X = z @ basis + 0.7 * rng.normal(size=(m, d))
        flipped = rng.random(m) < flip
        return X, np.where(flipped, 1 - y, y)

    return draw


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--counts", type=lambda s: [int(v) for v in s.split(",")], default=[5, 6, 8, 10, 12, 16, 25])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    draw = make_draw(args.dim, rng)
    t0 = time.time()
    print(f"Synthetic embeddings (d={args.dim}); forecast from 50 labels of the AUC at {HORIZON} labels")
    print("| rarer class in 50 | forecasts made | MAE | bias | 90% interval covers |")
    print("|---|---|---|---|---|")
    for k in args.counts:
        prevalence = k / 50
        X_test, y_test = draw(20000, int(round(20000 * prevalence)))
        truth = np.mean(
            [
                roc_auc(y_test, fit_probe(*draw(HORIZON, int(round(HORIZON * prevalence)))).decision_function(X_test))
                for _ in range(10)
            ]
        )
        errs, cover = [], []
        for rep in range(args.reps):
            X, y = draw(50, k)
            fc = forecast(X, y, 0.9, seed=rep, min_labels=10, min_class_labels=4, n_boot=200)
            if fc.fit is None:
                continue
            errs.append(fc.predict_auc(HORIZON) - truth)
            lo, hi = fc.predict_interval(HORIZON)
            cover.append(lo <= truth <= hi)
        e = np.array(errs)
        mae = f"{np.mean(np.abs(e)):.4f}" if e.size else "—"
        bias = f"{np.mean(e):+.4f}" if e.size else "—"
        cov = f"{np.mean(cover):.0%}" if cover else "—"
        print(f"| {k} | {len(e)} of {args.reps} | {mae} | {bias} | {cov} |", flush=True)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
