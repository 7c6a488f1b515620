"""Tests of backend.lcdb: reading LCDB curves with the held-out rule (even OpenML ids only)."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from backend.lcdb import AUC_MEMBER, HeldOutError, read_lcdb_curves

HEADER = "openmlid,learner,size_train,size_test,outer_seed,inner_seed,traintime,score_train,score_valid,score_test"
LR = "sklearn.linear_model.LogisticRegression"


def lcdb_lines(curves: dict[tuple[int, str], dict[int, list[float]]], odd_rows: bool = True) -> list[str]:
    """CSV lines in LCDB's layout; with odd_rows, an odd-id row whose fields are garbage."""
    lines = [HEADER]
    for (openml_id, learner), by_size in curves.items():
        for size, scores in by_size.items():
            for seed, score in enumerate(scores):
                lines.append(f"{openml_id},{learner},{size},100,{seed},0,0.01,1.0,{score},{score}")
    if odd_rows:
        lines.append("3,not-a-learner,not-a-size,x,y,z,w,v,u,not-a-score")
    return [line + "\n" for line in lines]


CURVES = {
    (2, LR): {16: [0.70, 0.72], 32: [0.78, 0.80], 64: [0.85, 0.83]},
    (4, LR): {16: [0.60, float("nan")], 32: [0.65, 0.66]},
    (4, "SVC_linear"): {16: [0.61, 0.62]},
    (6, "sklearn.tree.DecisionTreeClassifier"): {16: [0.9, 0.9]},
}


def test_reads_even_curves_and_drops_odd_rows_unparsed():
    """Even-id curves of the asked learners come back; an odd row is skipped without parsing it."""
    curves = read_lcdb_curves(lcdb_lines(CURVES))
    assert [(c.openml_id, c.learner) for c in curves] == [(2, LR), (4, "SVC_linear"), (4, LR)]
    first = curves[0]
    np.testing.assert_array_equal(first.sizes, [16, 32, 64])
    np.testing.assert_allclose(first.means, [0.71, 0.79, 0.84])
    assert len(curves[2].scores[0]) == 1  # the NaN split is dropped


def test_asking_for_an_odd_id_is_refused():
    """Naming an odd OpenML id raises HeldOutError before anything is read."""
    with pytest.raises(HeldOutError, match=r"\[7\].*held out"):
        read_lcdb_curves(lcdb_lines(CURVES), openml_ids=[2, 7])


def test_no_odd_id_ever_comes_back():
    """Even when every learner is asked for, no curve of an odd id is returned."""
    rows = lcdb_lines({(5, LR): {16: [0.7]}, (8, LR): {16: [0.8]}}, odd_rows=False)
    curves = read_lcdb_curves(rows, learners=[LR])
    assert [c.openml_id for c in curves] == [8]


def test_restricting_to_ids():
    """openml_ids restricts the curves to those (even) datasets."""
    curves = read_lcdb_curves(lcdb_lines(CURVES), openml_ids=[4])
    assert {c.openml_id for c in curves} == {4}


def test_reads_the_sdist_archive(tmp_path):
    """The LCDB sdist (tar.gz) is read through its database-auc.csv member."""
    data = "".join(lcdb_lines(CURVES)).encode()
    archive = tmp_path / "lcdb-0.1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(AUC_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert len(read_lcdb_curves(archive)) == 3


def test_a_file_that_is_not_lcdb_is_refused(tmp_path):
    """A CSV with another header raises ValueError naming the header."""
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="not an LCDB database-auc.csv"):
        read_lcdb_curves(path)
