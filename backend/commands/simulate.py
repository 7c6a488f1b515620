"""``labelcast simulate``: replay an annotation session and show how the forecast behaved."""

from __future__ import annotations

import argparse
import json
import math
import pathlib

from backend.exceptions import CommandError
from backend.settings import DEFAULT_RANDOM_START


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="replay an annotation session on a labeled data set",
        description=(
            "Forecast from the first k rows of a labeled data set at each checkpoint (the rows after k "
            "are the unlabeled pool: their embeddings are used, never their labels), then measure "
            "the AUC realised with all rows (repeated 5-fold cross-validation)."
        ),
    )
    p.add_argument(
        "--data",
        required=True,
        type=pathlib.Path,
        help=".npz with X (n×d) and y (n) in annotation order, or a TB radiological-signs .json",
    )
    p.add_argument("--target", type=float, default=0.9, help="target AUC (default 0.90)")
    p.add_argument("--checkpoints", default="50,100,200", help="comma-separated label counts (default 50,100,200)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (JSON input) and forecast seed")
    p.add_argument(
        "--method",
        default=None,
        help="curve-fitting method: analog (default: the prior learned from real curves), pow3-bma or pow3",
    )
    p.add_argument(
        "--order",
        default="file",
        choices=("file", "random", "uncertainty", "mixed"),
        help="labeling order replayed: the file's rows (default), random, uncertainty "
        "(20 random rows, then least sure first) or mixed (--random-start random rows, then least "
        "sure first with 20%% random audit rows)",
    )
    p.add_argument(
        "--random-start",
        type=int,
        default=DEFAULT_RANDOM_START,
        help=f"rows --order mixed replays in random order first (default {DEFAULT_RANDOM_START}, the "
        "service's default random_start; other orders ignore it)",
    )
    p.add_argument("--json", type=pathlib.Path, help="write the checkpoints and the final AUC here")
    p.add_argument("--plot", type=pathlib.Path, help="write a PNG of the last checkpoint's learning curve here")
    p.set_defaults(func=run)


def _parse_checkpoints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"--checkpoints must be comma-separated whole numbers, got {text!r}") from None
    if not values:
        raise CommandError("--checkpoints is empty")
    return values


def run(args: argparse.Namespace) -> int:
    from backend.curve import DEFAULT_METHOD, METHODS
    from backend.datasets import load_labeled_data
    from backend.simulate import simulate

    method = args.method or DEFAULT_METHOD
    if method not in METHODS:
        raise CommandError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if args.random_start < 0:
        raise CommandError(f"--random-start must be an integer >= 0, got {args.random_start}")
    from backend.readiness import check_target_auc

    try:
        check_target_auc(args.target, "--target")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    checkpoints = _parse_checkpoints(args.checkpoints)
    data = load_labeled_data(args.data, seed=args.seed)
    n = len(data.y)
    too_big = [k for k in checkpoints if k > n]
    if too_big:
        raise CommandError(f"{args.data} has {n} rows; checkpoints {too_big} are beyond that")
    if any(k < 1 for k in checkpoints):
        raise CommandError(f"checkpoints must be at least 1, got {checkpoints}")
    result = simulate(
        data, args.target, checkpoints, seed=args.seed, method=method, order=args.order, random_start=args.random_start
    )
    print(_table(result))
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        from backend.plotting import plot_forecast

        last = result.forecasts[-1]
        plot_forecast(
            last,
            args.plot,
            title=f"{args.data.name}: forecast at {last.n_labels} of {n} labels",
            history=result.forecasts[:-1],
            realised=(result.n_total, result.final_auc, result.final_interval),
            x_max=max(1.2 * n, 4 * last.n_labels),
        )
        print(f"wrote {args.plot}")
    return 0


def _fmt(x, digits=3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    return f"{x:.{digits}f}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x):,}"


def _table(result) -> str:
    doc = result.to_dict()
    lines = [
        f"target AUC {doc['target_auc']:.2f}, {result.n_total} rows, method {result.method}, order {result.order}",
        f"{'labels':>7} {'AUC now (90% CI)':>22} {'plateau (90% CI)':>22} {'AUC@full':>9} {'raw@full':>9} {'total needed':>12} {'reach':>6}  status",
    ]
    for fc, row in zip(result.forecasts, doc["checkpoints"]):
        auc = "—" if fc.auc is None else f"{fc.auc:.3f} ({fc.auc_interval[0]:.3f}–{fc.auc_interval[1]:.3f})"
        plat = (
            "—"
            if fc.plateau is None
            else f"{fc.plateau:.3f} ({fc.plateau_interval[0]:.3f}–{fc.plateau_interval[1]:.3f})"
        )
        full = "—" if row["predicted_auc_at_full"] is None else f"{row['predicted_auc_at_full']:.3f}"
        raw = f"{row['raw_predicted_auc_at_full']:.3f}" if fc.corrected else "="
        status = f"{fc.status} (labels unlike the pool: corrected)" if fc.corrected else fc.status
        reach = "—" if fc.reach_share is None else f"{fc.reach_share:.0%}"
        lines.append(
            f"{fc.n_labels:>7} {auc:>22} {plat:>22} {full:>9} {raw:>9} {_fmt(fc.labels_needed):>12} {reach:>6}  {status}"
        )
    lo, hi = result.final_interval
    lines.append(
        f"{'final':>7} {f'{result.final_auc:.3f} ({lo:.3f}–{hi:.3f})':>22}  realised with all {result.n_total} rows"
    )
    lines.append(
        "total needed: labels in all (those so far included) for the target AUC, the median over the forecast "
        "curves that reach it; reach: the share of those curves; never: fewer than 1 in 10 reach it"
    )
    return "\n".join(lines)
