"""Tests of backend.demo_data and `labelcast data tb-signs`: the TB sets fetched from PyPI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile

import pytest

from backend.demo_data import (
    SETS,
    DownloadError,
    cached,
    default_data_dir,
    extract_tb_signs,
    fetch_tb_signs,
)
from backend.exceptions import DataFormatError

TOP = "bob.med.tb-1.0.2"


def _sets_json(n: int, seed: int) -> bytes:
    rows = [[f"img_{seed}_{i}.png", float(i % 2), [0.1 * i + seed] * 14] for i in range(n)]
    return json.dumps({"train": rows, "validation": rows[:2], "test": rows[:2]}).encode()


def _members() -> dict[str, bytes]:
    json_sets = [name for name in SETS if name.endswith(".json")]
    return {
        **{f"{TOP}/{SETS[name]}": _sets_json(20 - 2 * i, i + 1) for i, name in enumerate(json_sets)},
        f"{TOP}/COPYING": b"GNU GENERAL PUBLIC LICENSE Version 3\n",
        f"{TOP}/bob/med/tb/data/shenzhen_RS/fold_0.json": b"{}",
    }


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "pack, name", [pytest.param(_zip, f"{TOP}.zip", id="zip"), pytest.param(_tar_gz, f"{TOP}.tar.gz", id="tar.gz")]
)
def test_extract_writes_the_six_sets_and_the_license(tmp_path, pack, name):
    """The six sets and COPYING come out byte for byte, and load as labeled data."""
    from backend.datasets import load_labeled_data

    members = _members()
    found = extract_tb_signs(pack(members), name, tmp_path / "cache")
    assert set(found.files) == {
        "shenzhen.json",
        "montgomery.json",
        "indian.json",
        "tbpoc.json",
        "hivtb.json",
        "padchest.json",
        "COPYING",
    }
    for file_name, member in SETS.items():
        assert found.files[file_name].read_bytes() == members[f"{TOP}/{member}"]
    assert len(load_labeled_data(found.files["shenzhen.json"]).y) == 24
    assert cached(tmp_path / "cache") == found
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_extract_names_the_missing_member(tmp_path):
    """An archive without the Montgomery set fails naming that member, and writes nothing."""
    members = _members()
    del members[f"{TOP}/{SETS['montgomery.json']}"]
    with pytest.raises(DataFormatError, match="montgomery_RS/default.json"):
        extract_tb_signs(_zip(members), f"{TOP}.zip", tmp_path / "cache")
    assert cached(tmp_path / "cache") is None


def test_extract_refuses_a_set_that_is_not_the_tb_format(tmp_path):
    """A member that is not {split: [...]} JSON is refused with its path."""
    members = _members()
    members[f"{TOP}/{SETS['shenzhen.json']}"] = b"[1, 2]"
    with pytest.raises(DataFormatError, match="shenzhen_RS/default.json"):
        extract_tb_signs(_zip(members), f"{TOP}.zip", tmp_path)


def test_extract_refuses_other_archive_kinds(tmp_path):
    """Only .zip and .tar.gz source distributions are read."""
    with pytest.raises(DataFormatError, match="not a .zip or .tar.gz"):
        extract_tb_signs(b"x", f"{TOP}.whl", tmp_path)


def test_default_data_dir_follows_the_environment(tmp_path):
    """LABELCAST_DATA_DIR wins, then XDG_CACHE_HOME, then ~/.cache."""
    assert default_data_dir({"LABELCAST_DATA_DIR": str(tmp_path)}) == tmp_path / "tb-signs"
    assert default_data_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "labelcast" / "tb-signs"
    assert default_data_dir({}).parts[-3:] == (".cache", "labelcast", "tb-signs")


@pytest.fixture
def local_index(tmp_path):
    """A PEP 691 JSON simple index on loopback serving a fixture sdist: ``(index_url, folder)``;
    the folder holds ``bob-med-tb/index.json`` and the archive."""
    from conftest import serve_folder

    folder = tmp_path / "index"
    (folder / "bob-med-tb").mkdir(parents=True)
    base, server = serve_folder(folder)
    yield base + "/{project}/index.json", folder
    server.shutdown()
    server.server_close()


def _publish(folder, archive: bytes, sha256: str | None = None) -> None:
    (folder / f"{TOP}.zip").write_bytes(archive)
    entry = {
        "filename": f"{TOP}.zip",
        "url": f"../{TOP}.zip",
        "hashes": {"sha256": sha256 or hashlib.sha256(archive).hexdigest()},
    }
    (folder / "bob-med-tb" / "index.json").write_text(json.dumps({"files": [entry]}))


def test_fetch_downloads_checks_and_extracts(tmp_path, local_index):
    """The archive named by the index is downloaded, its sha256 checked, the sets extracted;
    a second call uses the cache (the index is gone and it still answers)."""
    index_url, folder = local_index
    _publish(folder, _zip(_members()))
    found = fetch_tb_signs(tmp_path / "cache", index_url=index_url)
    assert found.files["COPYING"].read_bytes().startswith(b"GNU GENERAL")
    (folder / "bob-med-tb" / "index.json").unlink()
    assert fetch_tb_signs(tmp_path / "cache", index_url=index_url) == found
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_tb_signs(tmp_path / "cache", force=True, index_url=index_url)


def test_fetch_refuses_an_archive_whose_sha256_differs(tmp_path, local_index):
    """A download that is not what the index lists is refused and nothing is extracted."""
    index_url, folder = local_index
    _publish(folder, _zip(_members()), sha256="0" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        fetch_tb_signs(tmp_path / "cache", index_url=index_url)
    assert cached(tmp_path / "cache") is None


def test_cli_prints_the_files_and_the_license(tmp_path, capsys):
    """`labelcast data tb-signs --dir` on a filled cache lists the files and says GPL-3.0."""
    from backend.cli import main

    extract_tb_signs(_zip(_members()), f"{TOP}.zip", tmp_path)
    assert main(["data", "tb-signs", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "shenzhen.json") in out and "GPL-3.0" in out


@pytest.mark.skipif(
    not (os.environ.get("CI") == "true" or os.environ.get("LABELCAST_NETWORK_TESTS") == "1"),
    reason="downloads 10 MB from PyPI: set LABELCAST_NETWORK_TESTS=1 (CI=true does)",
)
def test_real_download_from_pypi(tmp_path):
    """The real sdist from PyPI gives the published splits (Shenzhen 422/107/133 images,
    Montgomery 88/22/28, Indian 83/20/52; TB POC's and HIV-TB's first folds 292/74/41 and
    174/44/25; PadChest's TB subset 160/40/50) with 14 sign scores per image, no image twice,
    and the GPL-3.0 text."""
    found = fetch_tb_signs(tmp_path / "cache")
    sizes, images = {}, []
    for name in ("shenzhen.json", "montgomery.json", "indian.json", "tbpoc.json", "hivtb.json", "padchest.json"):
        sets = json.loads(found.files[name].read_text())
        sizes[name] = tuple(len(sets[split]) for split in ("train", "validation", "test"))
        assert all(len(row[2]) == 14 and row[1] in (0.0, 1.0) for rows in sets.values() for row in rows)
        images += [row[0] for rows in sets.values() for row in rows]
    assert sizes == {
        "shenzhen.json": (422, 107, 133),
        "montgomery.json": (88, 22, 28),
        "indian.json": (83, 20, 52),
        "tbpoc.json": (292, 74, 41),
        "hivtb.json": (174, 44, 25),
        "padchest.json": (160, 40, 50),
    }
    assert len(set(images)) == len(images) == 1855
    assert b"GNU GENERAL PUBLIC LICENSE" in found.files["COPYING"].read_bytes()[:200]
