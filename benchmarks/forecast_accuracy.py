"""How well does the forecast predict the AUC and the labels needed? Every method side by side.

``--lcdb PATH`` (the LCDB 0.1.0 sdist or its database-auc.csv): real learning curves of linear
learners on OpenML binary tasks, **even OpenML ids only** (the odd ids are held out; the reader
drops them). Grouped 5-fold cross-validation over datasets: the analog method's library is
rebuilt for each fold from the other folds' datasets, so no dataset is scored by a prior that
its own curves helped make. Each curve is forecast from its points at n <= 64 (and <= 128) and
judged at the largest size <= 4,096 (the mean over its 25 splits): AUC error, labels-needed
error for two targets per curve (the AUC half-way and 80 % of the way from the last observed
mean to the truth; the true labels needed is where the measured mean curve, as a running
maximum, first reaches the target, interpolated in log-size), 90 % interval coverage, and how
often a count at or below the horizon is named for targets the curve never reaches by then
(0.02 and 0.05 above its best AUC up to the horizon).

Then the product's own curves (subsets of the labels collected), as before:

For each data set and each of ``--orders`` random annotation orders, the learning curve is built
from the first k labels (k in ``--from``), every curve method is fitted to the same points, and
its prediction at the full size is compared with the truth:

* real sets (``../shared/data/tb-radiological-signs``): the truth is the mean AUC of 5-fold
  cross-validation on all rows, repeated 20 times; predictions are made at the cross-validation
  training size, so forecast and truth describe the same probe;
* synthetic embeddings: the truth is the exact learning curve of the same probe, estimated
  by training on fresh samples and scoring on 20,000 held-out ones.

The naive forecast says the AUC stays where it is now (the cross-validated AUC at k labels).
It also reports how often the 90 % labels-needed interval of each method contains the true
labels needed for a target AUC (``--target``; by default the true AUC at 40 % of the full size,
so the answer lies in the range being forecast); the truth comes from the dense true curve.

    python benchmarks/forecast_accuracy.py --orders 40
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.curve import METHODS, fit_learning_curve  # noqa: E402
from backend.curve_library import build_prior  # noqa: E402
from backend.lcdb import LINEAR_LEARNERS, read_lcdb_curves  # noqa: E402
from backend.datasets import load_labeled_data  # noqa: E402
from backend.learning_curve import empirical_learning_curve  # noqa: E402
from backend.metrics import roc_auc  # noqa: E402
from backend.probe import fit_probe  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "tb-radiological-signs"


def true_curve_by_subsampling(X, y, sizes, repeats, rng):
    """Mean out-of-sample AUC of probes trained on random subsets of each size."""
    out = []
    for m in sizes:
        scores = []
        for _ in range(repeats):
            idx = rng.permutation(len(y))
            train, test = idx[:m], idx[m:]
            if y[train].min() == y[train].max() or y[test].min() == y[test].max():
                continue
            scores.append(roc_auc(y[test], fit_probe(X[train], y[train]).decision_function(X[test])))
        out.append(np.mean(scores))
    return np.array(out)


def cv_auc(X, y, repeats, rng):
    """Mean AUC of 5-fold cross-validation on all rows, and the training size of a fold."""
    n = len(y)
    scores = []
    for _ in range(repeats):
        fold = np.empty(n, dtype=int)
        for cls in (0, 1):
            idx = rng.permutation(np.flatnonzero(y == cls))
            fold[idx] = np.arange(len(idx)) % 5
        for f in range(5):
            tr, te = fold != f, fold == f
            scores.append(roc_auc(y[te], fit_probe(X[tr], y[tr]).decision_function(X[te])))
    return float(np.mean(scores)), n - math.ceil(n / 5)


def synthetic(n, d, rng, rank=8, shift=0.9, flip=0.08):
    """Gaussian embeddings with a low-rank class signal and label noise (a plateau below 1)."""
    basis = rng.normal(size=(rank, d))

    def draw(m):
        y = rng.integers(0, 2, m)
        z = rng.normal(size=(m, rank)) + shift * y[:, None] * np.linspace(1, 0.2, rank)[None, :]
        X = z @ basis + 0.7 * rng.normal(size=(m, d))
        noisy = np.where(rng.random(m) < flip, 1 - y, y)
        return X, noisy

    return draw


def labels_needed_from_dense(sizes, curve, target):
    above = np.flatnonzero(curve >= target)
    return math.inf if above.size == 0 else float(sizes[above[0]])


def evaluate(name, X_full, y_full, truth_at, truth_size, dense_sizes, dense_curve, args, rng):
    rows = {(k, m): [] for k in args.from_ for m in (*args.methods, "naive")}
    cover = {(k, m): [] for k in args.from_ for m in args.methods}
    cover_auc = {(k, m): [] for k in args.from_ for m in args.methods}
    labels_log2 = {(k, m): [] for k in args.from_ for m in args.methods}
    # The coverage target: what the true curve reaches at 40 % of the full size, so that the
    # true labels-needed lies inside the range a user would be forecasting.
    target = args.target or round(float(np.interp(0.4 * len(y_full), dense_sizes, dense_curve)), 3)
    true_needed = labels_needed_from_dense(dense_sizes, dense_curve, target)
    n = len(y_full)
    for order in range(args.orders):
        perm = rng.permutation(n)
        for k in args.from_:
            X, y = X_full[perm[:k]], y_full[perm[:k]]
            if min(y.sum(), k - y.sum()) < 12:
                continue
            curve = empirical_learning_curve(X, y, seed=order)
            rows[(k, "naive")].append(curve.auc - truth_at)
            for method in args.methods:
                fit = fit_learning_curve(
                    curve.sizes, curve.scores, method=method, n_boot=args.boot, seed=order, pooled=True
                )
                rows[(k, method)].append(float(fit.predict([truth_size])[0]) - truth_at)
                lo_a, hi_a = fit.interval([truth_size], 0.9)
                cover_auc[(k, method)].append(bool(lo_a[0] <= truth_at <= hi_a[0]))
                if math.isfinite(true_needed):
                    lo, hi = fit.labels_interval(target)
                    cover[(k, method)].append(lo <= true_needed <= hi)
                    pred = fit.labels_for(target)
                    labels_log2[(k, method)].append(
                        abs(math.log2(pred / true_needed)) if math.isfinite(pred) else math.inf
                    )
    print(
        f"\n## {name}: n={n}, d={X_full.shape[1]}, true AUC at {truth_size} labels = {truth_at:.3f}, "
        f"true labels for AUC {target} = {true_needed:g}"
    )
    print(
        "| from | method | MAE | bias | RMSE | AUC 90% interval covers truth | labels-needed 90% interval covers truth "
        "| labels needed within 2x | median labels error |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for k in args.from_:
        for m in (*args.methods, "naive"):
            e = np.array(rows[(k, m)])
            if e.size == 0:
                continue
            cov = cover.get((k, m), [])
            cov_s = f"{np.mean(cov):.0%} of {len(cov)}" if cov else "—"
            cov_a = cover_auc.get((k, m), [])
            cov_a_s = f"{np.mean(cov_a):.0%}" if cov_a else "—"
            l2 = np.array(labels_log2.get((k, m), []))
            within, med = _labels_error_cells(l2)
            print(
                f"| {k} | {m} | {np.mean(np.abs(e)):.4f} | {np.mean(e):+.4f} | "
                f"{np.sqrt(np.mean(e**2)):.4f} | {cov_a_s} | {cov_s} | {within} | {med} |"
            )


def _labels_error_cells(l2):
    """The "within 2x" and "median error" cells from |log2(predicted / true)| values (inf: never)."""
    if l2.size == 0:
        return "—", "—"
    med = np.median(l2)
    return f"{np.mean(l2 <= 1):.0%} of {len(l2)}", "never reaches" if math.isinf(med) else f"x{2**med:.1f}"


def lcdb_true_labels(sizes, means, horizon, target):
    """Labels where the measured mean curve (running maximum) first reaches target."""
    keep = sizes <= horizon
    s, m = sizes[keep], np.maximum.accumulate(means[keep])
    above = np.flatnonzero(m >= target)
    if above.size == 0:
        return math.inf
    i = above[0]
    if i == 0:
        return float(s[0])
    f = (target - m[i - 1]) / (m[i] - m[i - 1])
    return float(np.exp(np.log(s[i - 1]) + f * (np.log(s[i]) - np.log(s[i - 1]))))


# The never-reached targets of the LCDB check: this much above a curve's best AUC up to the horizon.
NEVER_REACHED_BY = (0.02, 0.05)


def lcdb_grouped_cv(curves, observe_up_to, n_draws, n_refits, folds=5, settings=None, methods=("naive", *METHODS)):
    """Per method: AUC errors, |log2 labels ratio|, and interval coverage on even-id LCDB curves."""
    ids = sorted({c.openml_id for c in curves})
    fold_of = {d: i % folds for i, d in enumerate(ids)}
    out = {m: {"err": [], "log2": [], "cover_auc": [], "cover_labels": [], "false_count": []} for m in methods}
    for fold in range(folds):
        library = [(c.sizes, c.means) for c in curves if fold_of[c.openml_id] != fold]
        prior = build_prior(library, **(settings or {}))
        for c in curves:
            if fold_of[c.openml_id] != fold or c.sizes.max() < 2 * observe_up_to:
                continue
            seen = np.flatnonzero(c.sizes <= observe_up_to)
            if len(seen) < 3:
                continue
            horizon_i = np.flatnonzero(c.sizes <= 4096)[-1]
            horizon, truth = c.sizes[horizon_i], c.means[horizon_i]
            sizes = np.concatenate([np.full(len(c.scores[i]), c.sizes[i]) for i in seen])
            scores = np.concatenate([c.scores[i] for i in seen])
            now = c.means[seen[-1]]
            gain = truth - now
            targets = [now + f * gain for f in (0.5, 0.8)] if gain >= 0.01 else []
            for m in methods:
                rec = out[m]
                if m == "naive":
                    rec["err"].append(now - truth)
                    for t in targets:
                        if math.isfinite(lcdb_true_labels(c.sizes, c.means, horizon, t)):
                            rec["log2"].append(math.inf)
                    continue
                n_boot = n_draws if m in ("analog", "ensemble") else n_refits
                fit = fit_learning_curve(sizes, scores, method=m, n_boot=n_boot, seed=fold, prior=prior)
                # Targets the measured curve never reaches by the horizon (above its best AUC there):
                # a count at or below the horizon is a false promise.
                best = float(c.means[: horizon_i + 1].max())
                for above in NEVER_REACHED_BY:
                    if best + above < 1.0:
                        rec["false_count"].append(fit.labels_for(best + above) <= horizon)
                rec["err"].append(float(fit.predict([horizon])[0]) - truth)
                lo, hi = fit.interval([horizon], 0.9)
                rec["cover_auc"].append(bool(lo[0] <= truth <= hi[0]))
                for t in targets:
                    true_n = lcdb_true_labels(c.sizes, c.means, horizon, t)
                    if not math.isfinite(true_n):
                        continue
                    pred_n = fit.labels_for(t)
                    rec["log2"].append(abs(math.log2(pred_n / true_n)) if math.isfinite(pred_n) else math.inf)
                    lo_n, hi_n = fit.labels_interval(t, 0.9)
                    rec["cover_labels"].append(bool(lo_n <= true_n <= hi_n))
    return out


def print_lcdb(path, args):
    print(
        f"\n## LCDB 0.1.0, even OpenML ids, linear learners ({', '.join(name.split('.')[-1] for name in LINEAR_LEARNERS)}); "
        "grouped 5-fold CV over datasets, judged at the largest size <= 4,096"
    )
    print(
        "| from | method | curves | AUC MAE | bias | labels within 2x | median labels error | "
        "AUC 90% interval covers | labels 90% interval covers | count named for a never-reached target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    curves = read_lcdb_curves(path, LINEAR_LEARNERS)
    for up_to in args.lcdb_from:
        res = lcdb_grouped_cv(curves, up_to, 200, args.lcdb_boot, methods=("naive", *args.methods))
        for m, rec in res.items():
            e, l2 = np.array(rec["err"]), np.array(rec["log2"])
            within, med_s = _labels_error_cells(l2)
            cov = lambda v: f"{np.mean(v):.0%}" if v else "—"  # noqa: E731
            print(
                f"| <= {up_to} | {m} | {len(e)} | {np.mean(np.abs(e)):.4f} | {np.mean(e):+.4f} | {within} | {med_s} | "
                f"{cov(rec['cover_auc'])} | {cov(rec['cover_labels'])} | {cov(rec['false_count'])} |",
                flush=True,
            )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=30, help="annotation orders per data set")
    parser.add_argument("--from", dest="from_", type=lambda s: [int(v) for v in s.split(",")], default=[50, 100])
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="AUC target of the coverage check (default: the true AUC at 40%% of the full size)",
    )
    parser.add_argument("--boot", type=int, default=100)
    parser.add_argument("--sets", default="shenzhen,montgomery,synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lcdb",
        type=pathlib.Path,
        default=None,
        help="LCDB 0.1.0 sdist or database-auc.csv: add the grouped cross-validation on its even ids",
    )
    parser.add_argument("--lcdb-from", type=lambda s: [int(v) for v in s.split(",")], default=[64, 128])
    parser.add_argument(
        "--lcdb-boot",
        type=int,
        default=20,
        help="bootstrap refits of the power laws in the LCDB section (the analog method draws 200)",
    )
    parser.add_argument(
        "--methods",
        type=lambda s: [m for m in s.split(",") if m],
        default=list(METHODS),
        help=f"curve methods to compare, comma-separated (default: all of {', '.join(METHODS)})",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    if args.lcdb is not None:
        print_lcdb(args.lcdb, args)
    for name in filter(None, args.sets.split(",")):
        if name == "synthetic":
            draw = synthetic(1000, 64, rng)
            X, y = draw(1000)
            X_test, y_test = draw(20000)
            dense = np.unique(np.geomspace(20, 1000, 25).astype(int))
            curve = []
            for m in dense:
                s = []
                for _ in range(10):
                    Xt, yt = draw(m)
                    s.append(roc_auc(y_test, fit_probe(Xt, yt).decision_function(X_test)))
                curve.append(np.mean(s))
            curve = np.array(curve)
            size = 800  # forecast at the full 1,000 labels' 5-fold training size
            truth = float(np.interp(size, dense, curve))
            evaluate("synthetic (d=64, rank-8 signal, 8% label noise)", X, y, truth, size, dense, curve, args, rng)
        else:
            data = load_labeled_data(SHARED / f"{name}.json", seed=args.seed)
            truth, size = cv_auc(data.X, data.y, 20, rng)
            dense = np.unique(np.geomspace(10, int(0.85 * len(data.y)), 20).astype(int))
            curve = true_curve_by_subsampling(data.X, data.y, dense, 30, rng)
            evaluate(f"{name} (real)", data.X, data.y, truth, size, dense, curve, args, rng)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
