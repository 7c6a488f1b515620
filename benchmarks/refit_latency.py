"""Seconds and memory for one ``forecast()`` call on synthetic 768-d embeddings.

The backend refits after every submitted label, so this is the cost of one refit (probe fits
for every learning-curve point, the curve fit and its bootstrap). Median of ``--repeats`` calls;
peak memory is the growth of the process's maximum resident set during the calls. CPU seconds
(the process's) tell the cost apart from waiting for a shared machine's cores: the refit runs on
one BLAS thread, so on an idle machine wall time is about CPU time.

    python benchmarks/refit_latency.py --sizes 100,1000,10000 --dim 768
    python benchmarks/refit_latency.py --sizes 1000 --pool 5000 --biased   # with a pool to correct for
    python benchmarks/refit_latency.py --sizes 1000 --pool 5000 --biased --pessimistic 0   # without round 12's cautious curve

``--pool N`` passes N unlabeled embeddings as well (the labeled-vs-pool comparison); with
``--biased`` the labeled rows are the least sure of a probe trained on 50 random rows (not a random
sample), so the forecast is corrected: the slowest refit.
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from backend.curve import METHODS  # noqa: E402
from backend import forecast as forecast_module  # noqa: E402
from backend.forecast import forecast  # noqa: E402
from backend.probe import fit_probe  # noqa: E402


def embeddings(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised embeddings with a weak low-rank class signal, like a frozen encoder's."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    basis = rng.normal(size=(16, d))
    z = rng.normal(size=(n, 16)) + 0.6 * y[:, None]
    X = z @ basis + 2.0 * rng.normal(size=(n, d))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def labeled_and_pool(n: int, n_pool: int, d: int, biased: bool):
    """``n`` labeled rows and ``n_pool`` unlabeled ones (None without a pool); with ``biased``
    the labeled rows are the least sure of a probe trained on 50 random rows."""
    X, y = embeddings(n + n_pool, d)
    if not n_pool:
        return X, y, None
    order = np.random.default_rng(1).permutation(n + n_pool)
    if biased:
        start = order[:50]
        margin = np.abs(fit_probe(X[start], y[start]).decision_function(X))
        margin[start] = -1.0  # the first 50 stay labeled
        order = np.argsort(margin, kind="stable")
    return X[order[:n]], y[order[:n]], X[order[n:]]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pool", type=int, default=0, help="unlabeled embeddings passed as the pool")
    parser.add_argument("--biased", action="store_true", help="labeled rows chosen least sure first")
    parser.add_argument(
        "--pessimistic",
        type=int,
        choices=(0, 1),
        default=int(forecast_module.PESSIMISTIC),
        help="1: the cautious curve's worst-case ends (backend.forecast.PESSIMISTIC, round 12); 0: without",
    )
    parser.add_argument(
        "--methods", default="ensemble,analog,pow3-bma", help=f"curve methods, side by side (of {', '.join(METHODS)})"
    )
    args = parser.parse_args(argv)
    forecast_module.PESSIMISTIC = bool(args.pessimistic)
    print(
        "| method | labels | pool | dim | median s | min s | median CPU s | peak Python heap MB | max RSS MB | status |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method, n in ((m, int(v)) for v in args.sizes.split(",") for m in args.methods.split(",")):
        X, y, pool = labeled_and_pool(n, args.pool, args.dim, args.biased)
        times, cpu = [], []
        tracemalloc.start()
        for r in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fc = forecast(X, y, 0.9, seed=r, method=method, pool=pool)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"| {method} | {n:,} | {args.pool:,} | {args.dim} | {np.median(times):.2f} | {min(times):.2f} | {np.median(cpu):.2f} | {peak / 2**20:.0f} | "
            f"{rss:.0f} | {fc.status}{' (corrected)' if fc.corrected else ''} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
