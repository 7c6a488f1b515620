"""Read real learning curves from the LCDB 0.1.0 source distribution, even OpenML ids only.

LCDB (the ``lcdb`` sdist on PyPI) holds ``lcdb/database-auc.csv``: the ROC-AUC of 20 learners
on ~160 OpenML binary tasks at geometric training sizes from 16, 25 train/test splits each.
LabelCast fits and tunes its curve prior on the datasets with an **even** OpenML id only; the
odd ids are held out for judging the method. This reader enforces that rule where the data
enters: a row whose id is odd is dropped on its id alone (nothing else of it is parsed), and
asking for an odd id is an error.

Pure standard library and numpy; nothing here knows the web, the store or torch.
"""

from __future__ import annotations

import csv
import io
import tarfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LcdbCurve", "read_lcdb_curves", "LINEAR_LEARNERS", "HeldOutError", "AUC_MEMBER"]

AUC_MEMBER = "lcdb-0.1.0/lcdb/database-auc.csv"
# The learners whose curves look like a linear probe's: the product fits a logistic regression
# on frozen embeddings. Perceptron, SGD and passive-aggressive curves are left out: they are not
# fitted to convergence and their curves jump by ±0.1 from one size to the next.
LINEAR_LEARNERS = (
    "sklearn.linear_model.LogisticRegression",
    "SVC_linear",
    "sklearn.linear_model.RidgeClassifier",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
)


class HeldOutError(ValueError):
    """An odd OpenML id was asked for: those datasets are the held-out judge."""


@dataclass(frozen=True, eq=False)
class LcdbCurve:
    """One learner's learning curve on one dataset.

    Attributes
    ----------
    openml_id : int
        Always even.
    learner : str
    sizes : ndarray of shape (k,)
        Distinct training sizes, ascending.
    scores : list of ndarray
        ``scores[i]`` holds the test ROC-AUC of every split at ``sizes[i]`` (NaNs dropped).
    """

    openml_id: int
    learner: str
    sizes: np.ndarray
    scores: list

    @property
    def means(self) -> np.ndarray:
        """Mean AUC at each size, shape (k,)."""
        return np.array([s.mean() for s in self.scores])


def read_lcdb_curves(
    source: str | Path | Iterable[str],
    learners: Iterable[str] = LINEAR_LEARNERS,
    openml_ids: Iterable[int] | None = None,
) -> list[LcdbCurve]:
    """Read the even-id ROC-AUC curves of ``learners``.

    Parameters
    ----------
    source : path or iterable of str
        The LCDB sdist (``lcdb-0.1.0.tar.gz``), a ``database-auc.csv`` file, or the CSV's
        lines (header first), as in the fixtures of the tests.
    learners : iterable of str
        Learner names as LCDB writes them.
    openml_ids : iterable of int, optional
        Restrict to these ids; every one must be even.

    Returns
    -------
    list of LcdbCurve
        Sorted by (openml_id, learner); sizes with no finite score are dropped.

    Raises
    ------
    HeldOutError
        If ``openml_ids`` names an odd id.
    """
    wanted_ids = None
    if openml_ids is not None:
        wanted_ids = {int(i) for i in openml_ids}
        odd = sorted(i for i in wanted_ids if i % 2)
        if odd:
            raise HeldOutError(f"OpenML ids {odd} are odd: odd ids are held out for judging and are never read")
    wanted_learners = set(learners)
    points: dict[tuple[int, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in _rows(source):
        openml_id = int(row[0])
        if openml_id % 2:
            continue  # held out: dropped on its id, nothing else read
        if (wanted_ids is not None and openml_id not in wanted_ids) or row[1] not in wanted_learners:
            continue
        score = float(row[9]) if row[9] else float("nan")
        if np.isfinite(score):
            points[(openml_id, row[1])][int(row[2])].append(score)
    curves = []
    for (openml_id, learner), by_size in sorted(points.items()):
        sizes = sorted(by_size)
        curves.append(
            LcdbCurve(
                openml_id=openml_id,
                learner=learner,
                sizes=np.array(sizes, dtype=np.float64),
                scores=[np.array(by_size[s]) for s in sizes],
            )
        )
    return curves


def _rows(source):
    """Yield the CSV's data rows (header checked and skipped)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(path) as archive:
                member = archive.extractfile(AUC_MEMBER)
                if member is None:
                    raise ValueError(f"{path} has no {AUC_MEMBER}")
                yield from _csv_rows(io.TextIOWrapper(member, encoding="utf-8"))
            return
        with open(path, encoding="utf-8", newline="") as handle:
            yield from _csv_rows(handle)
        return
    yield from _csv_rows(source)


def _csv_rows(lines):
    reader = csv.reader(lines)
    header = next(reader, None)
    expected = ["openmlid", "learner", "size_train"]
    if header is None or header[:3] != expected or len(header) < 10 or header[9] != "score_test":
        raise ValueError(f"not an LCDB database-auc.csv: header {header!r}")
    yield from reader
