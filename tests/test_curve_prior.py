"""Tests of backend.curve_prior and backend.curve_library: the learned prior, its file and its use."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from backend.curve import fit_learning_curve
from backend.curve_library import build_prior, tabulate_curve
from backend.curve_prior import GRID, SETTINGS, CurvePrior, load_default_prior, posterior
from backend.lcdb import LINEAR_LEARNERS
from test_lcdb import lcdb_lines

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_curve_prior.py"
SIZES = np.array([16, 23, 32, 45, 64, 91, 128, 181, 256], dtype=float)


def _curve(a, b, c, sizes=SIZES):
    return np.clip(a - b * sizes ** (-c), 0, 1)


def _fixture_curves():
    """Four even-id curves of linear learners (and an odd row the reader must drop)."""
    shapes = {(2, 0.95, 1.5, 0.6), (4, 0.80, 0.8, 0.4), (6, 0.90, 3.0, 0.9), (8, 0.70, 0.5, 0.3)}
    curves = {}
    for openml_id, a, b, c in sorted(shapes):
        means = _curve(a, b, c)
        curves[(openml_id, LINEAR_LEARNERS[0])] = {int(s): [m - 0.005, m + 0.005] for s, m in zip(SIZES, means)}
    return curves


def test_shipped_prior_loads_and_keeps_the_held_out_rule():
    """The shipped prior parses, holds real curves of even OpenML ids only, and uses the code's settings."""
    prior = load_default_prior()
    assert prior.curves.shape[1] == len(GRID) and len(prior.curves) >= 100
    assert all(i % 2 == 0 for i in prior.source["openml_ids"])
    assert {name: getattr(prior, name) for name in SETTINGS} == SETTINGS
    assert prior.measured_from == 16
    assert (ROOT / "backend" / "data" / "curve_prior.json").stat().st_size <= 1_000_000


def test_json_round_trip_is_byte_identical():
    """to_json of a parsed prior gives the same bytes back."""
    text = load_default_prior().to_json()
    assert CurvePrior.from_json(text).to_json() == text


@pytest.mark.parametrize(
    "doc, message",
    [
        pytest.param({"format": "something-else"}, "not a LabelCast curve prior", id="format"),
        pytest.param([1, 2], "not a LabelCast curve prior", id="not-an-object"),
        pytest.param({"format": "labelcast-curve-prior/2", "grid": [1, 2]}, "another grid", id="grid"),
    ],
)
def test_a_wrong_file_is_refused(doc, message):
    """A file that is not a curve prior raises ValueError saying so."""
    with pytest.raises(ValueError, match=message):
        CurvePrior.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    "curves, settings, message",
    [
        pytest.param(np.full((2, 5), 0.8), {}, "shape", id="wrong-grid"),
        pytest.param(np.full((1, len(GRID)), 1.2), {}, r"\[0, 1\]", id="out-of-range"),
        pytest.param(np.linspace(0.9, 0.6, len(GRID))[None, :], {}, "non-decreasing", id="decreasing"),
        pytest.param(np.full((1, len(GRID)), 0.8), {"tau": 0.0}, "tau must be a positive", id="tau-zero"),
    ],
)
def test_bad_priors_are_refused(curves, settings, message):
    """Invalid library curves or settings raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        CurvePrior(curves=curves, **settings)


def test_tabulated_curve_matches_measurements_and_never_decreases():
    """A tabulated curve follows the measured means at their sizes, stays in [0.5, 1] below them and never falls."""
    means = _curve(0.9, 1.0, 0.5)
    table = tabulate_curve(SIZES, means)
    on_grid = np.isin(GRID, SIZES)
    np.testing.assert_allclose(table[on_grid], means[np.isin(SIZES, GRID)], atol=1e-9)
    np.testing.assert_allclose(np.interp(np.log(SIZES), np.log(GRID), table), means, atol=1e-3)
    assert np.all(np.diff(table) >= 0)
    assert table.min() >= 0.5 and table.max() <= 1


def test_a_library_curve_observed_again_is_forecast_by_itself():
    """Points taken from one library curve give that curve the largest weight and a forecast close to it."""
    shapes = [(0.95, 1.5, 0.6), (0.80, 0.8, 0.4), (0.90, 3.0, 0.9), (0.70, 0.5, 0.3)]
    prior = build_prior([(SIZES, _curve(*s)) for s in shapes])
    seen = SIZES <= 64
    post = posterior(prior, SIZES[seen], _curve(*shapes[2])[seen], np.full(seen.sum(), 1e-5))
    assert np.allclose(post.curves[0], prior.curves[2])
    assert post.weights[0] > 0.9 and abs(post.shifts[0]) < 0.01
    fit = fit_learning_curve(SIZES[seen], _curve(*shapes[2])[seen], method="analog", prior=prior, n_boot=50)
    assert fit.predict([256])[0] == pytest.approx(_curve(*shapes[2], sizes=np.array([256.0]))[0], abs=0.01)


def test_a_level_shift_is_recovered():
    """A library shape seen 0.03 lower is forecast 0.03 lower."""
    shapes = [(0.95, 1.5, 0.6), (0.80, 0.8, 0.4)]
    prior = build_prior([(SIZES, _curve(*s)) for s in shapes])
    seen = SIZES <= 64
    fit = fit_learning_curve(SIZES[seen], _curve(*shapes[0])[seen] - 0.03, method="analog", prior=prior, n_boot=0)
    truth = _curve(*shapes[0], sizes=np.array([256.0]))[0] - 0.03
    assert fit.predict([256])[0] == pytest.approx(truth, abs=0.01)


def test_pooled_repeats_widen_the_intervals():
    """Repeats that are subsets of one pool widen the analog interval by one repeat's spread."""
    sizes = np.repeat([16, 32, 64], 8).astype(float)
    scores = np.clip(np.repeat([0.75, 0.8, 0.84], 8) + np.tile(np.linspace(-0.05, 0.05, 8), 3), 0, 1)
    independent = fit_learning_curve(sizes, scores, n_boot=200)
    pooled = fit_learning_curve(sizes, scores, n_boot=200, pooled=True)
    lo_i, hi_i = independent.interval([500])
    lo_p, hi_p = pooled.interval([500])
    assert hi_p[0] - lo_p[0] > hi_i[0] - lo_i[0]


def _run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_the_script_regenerates_the_prior_deterministically(tmp_path):
    """The build script writes, from a small LCDB fixture, exactly what build_prior makes; --check agrees."""
    fixture = tmp_path / "database-auc.csv"
    fixture.write_text("".join(lcdb_lines(_fixture_curves())))
    out = tmp_path / "prior.json"
    done = _run_script("--lcdb", fixture, "--out", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    prior = CurvePrior.from_json(text)
    expected = build_prior(
        [
            (SIZES, _curve(a, b, c))
            for _, a, b, c in sorted(
                {(2, 0.95, 1.5, 0.6), (4, 0.80, 0.8, 0.4), (6, 0.90, 3.0, 0.9), (8, 0.70, 0.5, 0.3)}
            )
        ]
    )
    np.testing.assert_allclose(prior.curves, expected.curves, atol=1e-5)
    assert prior.source["openml_ids"] == [2, 4, 6, 8]
    assert _run_script("--lcdb", fixture, "--out", out, "--check").returncode == 0
    out.write_text(text.replace('"tau":0.1', '"tau":0.2'))
    changed = _run_script("--lcdb", fixture, "--out", out, "--check")
    assert changed.returncode == 1 and "DIFFERS" in changed.stdout


@pytest.mark.skipif(
    not os.environ.get("LCDB_SDIST"), reason="LCDB_SDIST (the lcdb-0.1.0 sdist, ~68 MB) not set; .ci/run sets it"
)
def test_shipped_prior_is_what_the_script_makes_from_lcdb():
    """The shipped prior equals what the script regenerates from the LCDB download: byte for byte,
    or number for number to the fifth decimal's last unit (``last_digit_differences``)."""
    done = _run_script("--lcdb", os.environ["LCDB_SDIST"], "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_allows_the_last_digit_and_nothing_more():
    """``last_digit_differences`` counts the numbers one unit apart in the fifth decimal (another
    CPU's float sums) and nothing for the same text; a larger gap, another string, another key or
    another length is a difference (``None``), and so is text that is not JSON."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_curve_prior", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = json.dumps({"source": {"rule": "even"}, "curves": [[0.75121, 0.5], [0.1]], "n": 3})
    apart = script.last_digit_differences

    def text(**change):
        doc = json.loads(shipped)
        doc.update(change)
        return json.dumps(doc)

    assert apart(shipped, shipped) == 0
    assert apart(shipped, text(curves=[[0.75122, 0.5], [0.1]])) == 1
    assert apart(shipped, text(curves=[[0.75122, 0.5], [0.10001]])) == 2
    assert apart(shipped, text(curves=[[0.75124, 0.5], [0.1]])) is None
    assert apart(shipped, text(curves=[[0.75121, 0.5], [0.1, 0.2]])) is None
    assert apart(shipped, text(source={"rule": "odd"})) is None
    assert apart(shipped, text(n=4)) is None
    assert apart(shipped, text(extra=1)) is None
    assert apart(shipped, shipped[:-1]) is None
