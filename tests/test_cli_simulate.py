"""Tests of ``labelcast simulate`` on the real Montgomery TB features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.cli import main


def test_simulate_real_file_writes_json_and_png(tb_data_dir, tmp_path, capsys):
    """simulate replays checkpoints, prints a table, writes the JSON document and a PNG."""
    out_json, out_png = tmp_path / "sim.json", tmp_path / "sim.png"
    code = main(
        [
            "simulate",
            "--data",
            str(tb_data_dir / "montgomery.json"),
            "--target",
            "0.9",
            "--checkpoints",
            "20,50,100",
            "--seed",
            "0",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "final" in printed and "collecting" in printed
    doc = json.loads(out_json.read_text())
    assert [c["n_labels"] for c in doc["checkpoints"]] == [20, 50, 100]
    first, last = doc["checkpoints"][0], doc["checkpoints"][-1]
    assert first["status"] == "collecting" and first["predicted_auc_at_full"] is None
    assert last["status"] in ("on_track", "target_reached", "unreachable")
    assert 0.5 < last["predicted_auc_at_full"] <= 1.0
    assert doc["final"]["n_labels"] == 138
    lo, hi = doc["final"]["auc_interval"]
    assert lo <= doc["final"]["auc"] <= hi
    assert doc["method"] == "ensemble"
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_npz(tmp_path, capsys):
    """An .npz in annotation order works too, with the reference pow3 method."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 150)
    X = rng.normal(size=(150, 6)) + y[:, None]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["simulate", "--data", str(tmp_path / "d.npz"), "--checkpoints", "60,150", "--method", "pow3"]) == 0
    assert "pow3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        pytest.param(["--checkpoints", "50,x"], "comma-separated", id="bad-checkpoints"),
        pytest.param(["--checkpoints", "5000"], "beyond", id="too-many"),
        pytest.param(["--target", "1.5"], "--target", id="bad-target"),
        pytest.param(["--method", "magic"], "--method", id="bad-method"),
        pytest.param(["--random-start", "-1"], "--random-start", id="bad-random-start"),
    ],
)
def test_simulate_bad_options(tb_data_dir, capsys, extra, message):
    """Bad options exit 2 with a one-line error, no traceback."""
    code = main(["simulate", "--data", str(tb_data_dir / "montgomery.json"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_simulate_unknown_format(tmp_path, capsys):
    """A file of an unknown format is a clear error."""
    (tmp_path / "d.txt").write_text("hello")
    assert main(["simulate", "--data", str(tmp_path / "d.txt")]) == 2
    assert "unknown data format" in capsys.readouterr().err


def test_simulate_table_says_what_total_needed_means(tmp_path, capsys):
    """The labels-needed column is headed "total needed" and a line says it counts every label,
    those so far included."""
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 60)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(120, 4)) + y[:, None], y=y)
    assert main(["simulate", "--data", str(tmp_path / "d.npz"), "--checkpoints", "40,120"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("labels"))
    assert "total needed" in header and " needed " not in header.replace("total needed", "")
    assert any(line.startswith("total needed: labels in all (those so far included)") for line in lines)
    # The share of forecast curves that reach the target stands beside the count.
    assert header.split()[-2:] == ["reach", "status"]
    row = next(line for line in lines if line.split()[:1] == ["120"])
    assert row.split()[-2].endswith("%"), row


def test_plot_title_names_the_data_file_not_its_whole_path(tmp_path, capsys, monkeypatch):
    """A long --data path does not crowd the plot's title: the title names the file only."""
    import matplotlib.axes

    titles = []
    real_set_title = matplotlib.axes.Axes.set_title

    def recording_set_title(self, label, *args, **kwargs):
        titles.append(label)
        return real_set_title(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", recording_set_title)
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    deep.mkdir(parents=True)
    rng = np.random.default_rng(2)
    y = np.tile([0, 1], 60)
    np.savez(deep / "tb.npz", X=rng.normal(size=(120, 4)) + y[:, None], y=y)
    assert (
        main(["simulate", "--data", str(deep / "tb.npz"), "--checkpoints", "40,80", "--plot", str(tmp_path / "p.png")])
        == 0
    )
    assert titles == ["tb.npz: forecast at 80 of 120 labels"]
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("order", ["file", "random", "uncertainty", "mixed"])
def test_simulate_order_replays_a_sampling_strategy(tb_data_dir, tmp_path, capsys, order):
    """--order replays a labeling order; uncertainty and mixed are flagged and corrected at 100
    labels of Shenzhen, random is not; the JSON names the order."""
    out_json = tmp_path / "sim.json"
    code = main(
        [
            "simulate",
            "--data",
            str(tb_data_dir / "shenzhen.json"),
            "--checkpoints",
            "100",
            "--order",
            order,
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"order {order}" in printed
    doc = json.loads(out_json.read_text())
    assert doc["order"] == order
    row = doc["checkpoints"][0]
    assert row["n_labels"] == 100 and row["selection_bias"]["n_pool"] == 662 - 100
    if order in ("uncertainty", "mixed"):
        assert row["corrected"] and "not a random sample" in row["message"]
        assert row["raw"]["auc"] < row["auc"]
        assert row["selection_bias"]["source"] == "classifier"
    elif order == "random":
        assert not row["corrected"] and "not a random sample" not in row["message"]
        assert row["raw_predicted_auc_at_full"] == row["predicted_auc_at_full"]
    else:  # the file's own order: corrected exactly when the comparison with the pool flags it
        assert order == "file"
        assert row["corrected"] == row["selection_bias"]["detected"]
        assert ("not a random sample" in row["message"]) == row["corrected"]


def test_simulate_bad_order(tb_data_dir, capsys):
    """An unknown --order is refused by the parser."""
    with pytest.raises(SystemExit):
        main(["simulate", "--data", str(tb_data_dir / "montgomery.json"), "--order", "sorted"])
    assert "--order" in capsys.readouterr().err


def test_mixed_replays_its_random_start_then_least_sure_first():
    """replay_order's mixed order: the first random_start rows drawn at random, then batches
    with a fifth at random; uncertainty keeps its 20 random rows."""
    import numpy as np

    from backend.settings import DEFAULT_RANDOM_START
    from backend.simulate import BATCH, START, replay_order

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=400) > 0).astype(np.int8)
    _, drawn = replay_order(X, y, "mixed", seed=1, n_steps=150)
    assert drawn[:DEFAULT_RANDOM_START].all() and not drawn[DEFAULT_RANDOM_START:150].all()
    assert drawn[DEFAULT_RANDOM_START:150].sum() == (150 - DEFAULT_RANDOM_START) // BATCH * 2
    _, drawn = replay_order(X, y, "mixed", seed=1, n_steps=150, random_start=30)
    assert drawn[:30].all() and drawn[30:150].sum() == 120 // BATCH * 2
    _, drawn = replay_order(X, y, "uncertainty", seed=1, n_steps=150)
    assert drawn[:START].all() and not drawn[START:150].any()
