"""Tests of backend.datasets: reading .npz and TB radiological-signs JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.datasets import load_labeled_data
from backend.exceptions import DataFormatError


def test_reads_real_tb_json(tb_data_dir):
    """The real Montgomery file loads all 138 rows of 14 features, shuffled by seed."""
    a = load_labeled_data(tb_data_dir / "montgomery.json", seed=0)
    b = load_labeled_data(tb_data_dir / "montgomery.json", seed=1)
    assert a.X.shape == (138, 14)
    assert set(a.y.tolist()) == {0, 1}
    assert not np.array_equal(a.y, b.y) and a.y.sum() == b.y.sum()


def test_npz_keeps_row_order(tmp_path):
    """An .npz is read as is, in annotation order."""
    X = np.arange(12.0).reshape(6, 2)
    np.savez(tmp_path / "d.npz", X=X, y=[0, 1, 0, 1, 1, 0])
    data = load_labeled_data(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.X, X)


@pytest.mark.parametrize(
    "name, content, message",
    [
        pytest.param("d.csv", "a,b\n", "unknown data format", id="csv"),
        pytest.param("d.json", "{not json", "not valid JSON", id="bad-json"),
        pytest.param("d.json", json.dumps({"train": [[1, 2]]}), "not \\[image_path", id="bad-row"),
        pytest.param("d.json", json.dumps([1, 2]), "object of splits", id="list"),
        pytest.param("d.json", json.dumps({"train": [["a", 2, [0.1]], ["b", 0, [0.2]]]}), "only 0 and 1", id="label-2"),
        pytest.param("d.npz", "not a zip", "not a readable .npz", id="bad-npz"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, name, content, message):
    """Files in no known format raise DataFormatError naming the file and the problem."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message):
        load_labeled_data(path)


def test_npz_without_y(tmp_path):
    """An .npz lacking y says which arrays it has."""
    np.savez(tmp_path / "d.npz", X=np.zeros((3, 2)))
    with pytest.raises(DataFormatError, match=r"lacks array\(s\) \['y'\]"):
        load_labeled_data(tmp_path / "d.npz")


def test_missing_file(tmp_path):
    """A missing file is reported by path."""
    with pytest.raises(DataFormatError, match="not found"):
        load_labeled_data(tmp_path / "nope.npz")
