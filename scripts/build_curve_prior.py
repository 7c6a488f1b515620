"""Regenerate LabelCast's curve prior (backend/data/curve_prior.json) from the LCDB download.

Deterministic up to the last digit: the same LCDB file gives the same bytes on one machine; on
another CPU a mean may round the other way in its fifth decimal, which ``--check`` accepts. Only datasets with an even OpenML id are
read (backend.lcdb drops odd-id rows on their id); the odd ids are held out for judging.

    pip download --no-deps --no-binary :all: lcdb==0.1.0 -d /tmp/lcdb
    python scripts/build_curve_prior.py --lcdb /tmp/lcdb/lcdb-0.1.0.tar.gz           # write
    python scripts/build_curve_prior.py --lcdb /tmp/lcdb/lcdb-0.1.0.tar.gz --check   # compare

The download itself is never committed; the prior it makes (about 100 KB) is package data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.curve_library import build_prior  # noqa: E402
from backend.lcdb import LINEAR_LEARNERS, read_lcdb_curves  # noqa: E402

SHIPPED = ROOT / "backend" / "data" / "curve_prior.json"


def make_prior_text(lcdb_path: pathlib.Path) -> str:
    """The prior's JSON text built from ``lcdb_path`` (sdist or database-auc.csv)."""
    curves = read_lcdb_curves(lcdb_path, LINEAR_LEARNERS)
    digest = hashlib.sha256(lcdb_path.read_bytes()).hexdigest()
    source = {
        "data": f"LCDB 0.1.0 {lcdb_path.name}, database-auc.csv, score_test, mean over splits",
        "sha256": digest,
        "learners": list(LINEAR_LEARNERS),
        "openml_ids": sorted({c.openml_id for c in curves}),
        "rule": "even OpenML ids only; odd ids are held out for judging",
        "curves": [f"{c.openml_id}:{c.learner}" for c in curves if len(c.sizes) >= 4],
    }
    prior = build_prior(((c.sizes, c.means) for c in curves), source=source)
    return prior.to_json()


LAST_DIGIT = 1.01e-5
"""How far two numbers of the prior may differ and still match: one unit in the fifth decimal
the prior is written with. numpy's float sums take a different order on different CPUs (its SIMD
dispatch), so a mean over LCDB's splits can round the other way there."""


def last_digit_differences(shipped: str, regenerated: str) -> int | None:
    """How many numbers of two priors' JSON texts are apart by at most ``LAST_DIGIT`` (and not
    equal), or ``None`` when the texts differ otherwise: in structure, in a string, in a number
    by more, or when one is not JSON."""
    if shipped == regenerated:
        return 0
    apart = 0

    def same(a, b) -> bool:
        nonlocal apart
        if isinstance(a, bool) or isinstance(b, bool) or type(a) is not type(b):
            return a == b and type(a) is type(b)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(same(u, v) for u, v in zip(a, b))
        if isinstance(a, float) and a != b:
            apart += 1
            return abs(a - b) <= LAST_DIGIT
        return a == b

    try:
        return apart if same(json.loads(shipped), json.loads(regenerated)) else None
    except ValueError:
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lcdb", type=pathlib.Path, required=True, help="lcdb-0.1.0.tar.gz or its database-auc.csv")
    parser.add_argument("--out", type=pathlib.Path, default=SHIPPED, help="where to write (default: the shipped file)")
    parser.add_argument(
        "--check", action="store_true", help="compare with --out instead of writing; exit 1 if they differ"
    )
    args = parser.parse_args(argv)
    text = make_prior_text(args.lcdb)
    if args.check:
        apart = last_digit_differences(args.out.read_text(encoding="utf-8"), text) if args.out.exists() else None
        verdict = "DIFFERS from" if apart is None else "matches"
        note = f" ({apart} numbers one unit apart in their last digit)" if apart else ""
        print(f"{args.out}: {verdict} what {args.lcdb.name} regenerates{note}")
        return 1 if apart is None else 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
