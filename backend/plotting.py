"""Learning-curve plots (matplotlib, Agg backend; imported only when a plot is drawn)."""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import IO, Sequence

import numpy as np

from backend.forecast import Forecast

__all__ = ["plot_forecast"]

_DRAWING = threading.Lock()
"""Held while a plot is drawn: matplotlib is not thread-safe (its mathtext parser, used for the
log axis's tick labels, failed with two refits drawing at once), and the embedded worker refits
several projects side by side. A plot takes a fraction of a second."""


def plot_forecast(
    forecast: Forecast,
    out: str | IO[bytes],
    *,
    title: str | None = None,
    history: Sequence[Forecast] = (),
    realised: tuple[int, float, tuple[float, float]] | None = None,
    x_max: float | None = None,
) -> None:
    """Draw the learning curve of ``forecast`` as a PNG.

    Parameters
    ----------
    forecast : Forecast
        Its empirical points (mean and spread per size), fitted curve with its band, the
        target line and the predicted labels-needed are drawn.
    out : path or binary file object
        Where the PNG goes.
    history : sequence of Forecast
        Earlier forecasts; their predicted plateaus are marked at their label counts.
    realised : (n_labels, auc, (low, high)), optional
        A measured final AUC to compare against (``labelcast simulate``).
    x_max : float, optional
        Right end of the x axis (default: a little beyond labels needed, or 4x the labels).

    When the forecast was corrected for labels unlike the pool (``forecast.corrected``), the
    uncorrected curve is drawn on the left and the corrected one on the right, same axes.
    """
    with _DRAWING:
        _plot(forecast, out, title, history, realised, x_max)


def _plot(forecast: Forecast, out, title, history, realised, x_max) -> None:
    # A Figure of its own, not pyplot's: pyplot keeps every open figure in a registry that
    # lives as long as the process unless closed. Its Agg canvas is attached at once: without
    # it, tight_layout draws the whole figure once more to find a renderer (0.3-0.9 s a plot).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if forecast.corrected:
        fig = Figure(figsize=(13, 4.6), dpi=110)
        raw_ax, ax = fig.subplots(1, 2, sharey=True)
    else:
        fig = Figure(figsize=(7.5, 4.6), dpi=110)
        ax = fig.subplots()
    FigureCanvasAgg(fig)
    _draw(ax, forecast, history, realised, x_max)
    ax.set_title(title or f"Learning curve — {forecast.status.replace('_', ' ')}", fontsize=11)
    if forecast.corrected:
        raw = _raw_view(forecast)
        _draw(raw_ax, raw, (), realised, x_max or _right_edge(forecast))
        raw_ax.set_title("as measured on the labels (not a random sample)", fontsize=10)
        ax.set_title("corrected towards all the project's images", fontsize=10)
        if title:
            fig.suptitle(title, fontsize=11)
        ax.set_ylim(*raw_ax.get_ylim())
    fig.text(0.01, 0.01, forecast.message, fontsize=7.5, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, format="png")


def _draw(ax, fc: Forecast, history, realised, x_max) -> None:
    ax.axhline(fc.target_auc, color="tab:red", ls="--", lw=1, label=f"target {fc.target_auc:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("labels (training-set size)")
    ax.set_ylabel("ROC-AUC (out of sample)")
    ax.grid(True, which="both", alpha=0.25)
    if fc.curve is None:
        ax.text(0.5, 0.5, fc.message, transform=ax.transAxes, ha="center", va="center", wrap=True, fontsize=9)
        ax.set_xlim(1, max(fc.n_labels, 10) * 4)
        ax.set_ylim(0.5, 1.0)
        ax.legend(loc="lower right", fontsize=8)
        return
    sizes = np.unique(fc.curve.sizes)
    means = np.array([fc.curve.scores[fc.curve.sizes == s].mean() for s in sizes])
    sds = np.array([fc.curve.scores[fc.curve.sizes == s].std() for s in sizes])
    ax.scatter(fc.curve.sizes, fc.curve.scores, s=6, color="tab:blue", alpha=0.25, lw=0)
    ax.errorbar(sizes, means, yerr=sds, fmt="o", ms=4, color="tab:blue", capsize=2, label="measured (mean ± sd)")
    low_y = float(min(fc.curve.scores.min(), fc.target_auc)) - 0.03
    if fc.fit is not None:
        right = x_max or _right_edge(fc)
        grid = np.geomspace(max(1.0, sizes.min() / 2), right, 200)
        lo, hi = fc.band(grid)
        ax.fill_between(grid, lo, hi, color="tab:orange", alpha=0.2, lw=0, label=f"{fc.level:.0%} band")
        ax.plot(grid, fc.fit.predict(grid), color="tab:orange", lw=1.8, label=f"fit ({fc.fit.method})")
        ax.axhline(fc.fit.plateau, color="tab:orange", ls=":", lw=1, label=f"plateau {fc.fit.plateau:.3f}")
        if fc.labels_needed is not None and math.isfinite(fc.labels_needed) and fc.labels_needed <= right:
            # The median over the forecast curves that reach the target: not where the averaged
            # (orange) curve crosses it, and with no crossing at all when the plateau is below.
            share = f", {fc.reach_share:.0%} of curves reach it" if fc.reach_share is not None else ""
            ax.axvline(
                fc.labels_needed,
                color="tab:green",
                ls="--",
                lw=1,
                label=f"labels needed ≈ {int(fc.labels_needed):,} (median of the curves{share})",
            )
        ax.set_xlim(grid[0], right)
        low_y = min(low_y, float(np.min(lo)))
    ax.axvline(fc.n_labels, color="gray", lw=0.8, alpha=0.6)
    for past in history:
        if past.plateau is not None:
            ax.plot([past.n_labels], [past.plateau], marker="_", ms=10, color="tab:purple", alpha=0.7)
    if realised is not None:
        n_r, auc_r, (lo_r, hi_r) = realised
        ax.errorbar(
            [n_r],
            [auc_r],
            yerr=[[auc_r - lo_r], [hi_r - auc_r]],
            fmt="*",
            ms=11,
            color="black",
            capsize=3,
            label=f"realised {auc_r:.3f} at {n_r:,}",
        )
    ax.set_ylim(max(0.0, low_y), 1.0)
    ax.legend(loc="lower right", fontsize=7.5)


def _raw_view(fc: Forecast) -> Forecast:
    """The forecast as the uncorrected curve would have made it (for the left panel)."""
    fit = fc.raw_fit
    needed = fit.labels_for(fc.target_auc) if fit is not None else None
    reach = fit.reach_share(fc.target_auc) if fit is not None else None
    return dataclasses.replace(
        fc,
        curve=fc.raw_curve,
        fit=fit,
        labels_needed=needed,
        reach_share=reach,
        raw_curve=None,
        raw_fit=None,
        optimistic_fit=None,
        pessimistic_fit=None,
    )


def _right_edge(fc: Forecast) -> float:
    right = 4.0 * fc.n_labels
    if fc.labels_needed is not None and math.isfinite(fc.labels_needed):
        right = max(right, 1.5 * fc.labels_needed)
    return float(min(right, 1e6))
