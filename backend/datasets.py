"""Read labeled embedding files: ``.npz`` (``X``, ``y``) or the TB radiological-signs JSON."""

from __future__ import annotations

import json
import pathlib
import zipfile
from dataclasses import dataclass

import numpy as np

from backend.exceptions import DataFormatError
from backend.probe import check_embeddings

__all__ = ["LabeledData", "load_labeled_data"]


@dataclass(frozen=True, eq=False)
class LabeledData:
    """Embeddings and 0/1 labels, rows in annotation order.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int8
    source : str
        Where the rows came from.
    """

    X: np.ndarray
    y: np.ndarray
    source: str


def load_labeled_data(path: str | pathlib.Path, seed: int = 0) -> LabeledData:
    """Load a labeled data set.

    Parameters
    ----------
    path : str or Path
        ``.npz`` with arrays ``X`` (n×d) and ``y`` (n), rows kept in annotation order; or
        ``.json`` in the format of the TB radiological-signs files
        (``{"train"|"validation"|"test": [[image_path, label, [features...]], ...]}``): every
        split pooled, then shuffled with ``seed``.
    seed : int
        Shuffle seed for JSON input.

    Raises
    ------
    DataFormatError
        Missing file, unknown extension, or content that is not in either format.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataFormatError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X, y = _read_npz(path)
    elif suffix == ".json":
        X, y = _read_tb_json(path)
        order = np.random.default_rng(seed).permutation(len(y))
        X, y = X[order], y[order]
    else:
        raise DataFormatError(
            f"{path}: unknown data format {suffix or '(no extension)'!r}; expected .npz with arrays "
            f"X and y, or a .json file like the shenzhen.json that `labelcast data tb-signs` fetches"
        )
    try:
        X, y = check_embeddings(X, y)
    except ValueError as exc:
        raise DataFormatError(f"{path}: {exc}") from exc
    return LabeledData(X=X, y=y, source=str(path))


def _read_npz(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("X", "y") if key not in data.files]
            if missing:
                raise DataFormatError(f"{path}: .npz lacks array(s) {missing}; it has {data.files}")
            return data["X"], data["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{path}: not a readable .npz file ({exc})") from exc


def _read_tb_json(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise DataFormatError(f"{path}: expected an object of splits like {{'train': [...]}}")
    rows = []
    for split, items in data.items():
        if not isinstance(items, list):
            raise DataFormatError(f"{path}: split {split!r} is not a list of rows")
        for i, row in enumerate(items):
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[2], list)):
                raise DataFormatError(f"{path}: row {i} of split {split!r} is not [image_path, label, [features...]]")
            rows.append(row)
    if not rows:
        raise DataFormatError(f"{path}: no rows")
    try:
        X = np.array([row[2] for row in rows], dtype=np.float64)
        y = np.array([row[1] for row in rows], dtype=np.float64)
    except ValueError as exc:
        raise DataFormatError(f"{path}: feature rows of different lengths or non-numbers ({exc})") from exc
    return X, y
