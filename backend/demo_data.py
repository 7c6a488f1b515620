"""The demo data sets: real TB radiological-sign features, fetched from PyPI, never committed.

The source distribution of ``bob.med.tb==1.0.2`` (GPL-3.0) carries, for six chest X-ray sets,
14 "radiological sign" scores per image and the TB label: Shenzhen (662 images), Montgomery
(138), Indian (155), TB POC (407), HIV-TB (243) and a PadChest TB subset (250). This module
downloads that archive from PyPI without building or installing it (its metadata step needs packages that no longer install),
checks the archive's sha256 against the index, and extracts one split file of each set into a
cache folder (``shenzhen.json``, ``montgomery.json``, ``indian.json``, ``tbpoc.json``,
``hivtb.json``, ``padchest.json``), with the package's ``COPYING``. Each split file holds all of
its set's images (``train``/``validation``/``test``); TB POC and HIV-TB have no default split,
so their first cross-validation fold's file is taken, and PadChest's is ``tb_idiap.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import tarfile
import urllib.parse
import zipfile
from collections.abc import Mapping

from backend.exceptions import DataFormatError, LabelCastError

__all__ = ["SDIST", "SETS", "TbSigns", "default_data_dir", "extract_tb_signs", "fetch_tb_signs"]

SDIST = ("bob.med.tb", "1.0.2")
"""The PyPI project and release whose source distribution holds the sets."""

SDIST_SHA256 = "eff0fd48e01dd9e249e79adc9b67bfdc9532478e2e44cb3c416fc44cc022a64c"
"""sha256 of ``bob.med.tb-1.0.2.zip`` as PyPI's index lists it (checked again on download)."""

SETS = {
    "shenzhen.json": "bob/med/tb/data/shenzhen_RS/default.json",
    "montgomery.json": "bob/med/tb/data/montgomery_RS/default.json",
    "indian.json": "bob/med/tb/data/indian_RS/default.json",
    "tbpoc.json": "bob/med/tb/data/tbpoc_RS/fold_0.json",
    "hivtb.json": "bob/med/tb/data/hivtb_RS/fold_0.json",
    "padchest.json": "bob/med/tb/data/padchest_RS/tb_idiap.json",
    "COPYING": "COPYING",
}
"""Cache file name -> member path inside the archive (below its top folder)."""

LICENSE = "GPL-3.0 (bob.med.tb 1.0.2, Idiap Research Institute); see COPYING next to the files"
"""The sets' license: they are fetched by each user and never committed to this project."""

INDEX_URL = "https://pypi.org/simple/{project}/"
"""PyPI's simple index (JSON form, PEP 691) for the archive's URL and sha256."""

DOWNLOAD_TIMEOUT_S = 120.0
"""Timeout of each HTTP request of the download (seconds); the archive is about 10 MB."""


class DownloadError(LabelCastError):
    """The archive could not be downloaded, or its sha256 differs from the index's."""


@dataclasses.dataclass(frozen=True)
class TbSigns:
    """Where the extracted sets lie.

    Attributes
    ----------
    folder : Path
        The cache folder.
    files : dict of str to Path
        Each of :data:`SETS` (the six JSON sets and ``COPYING``) in ``folder``.
    """

    folder: pathlib.Path
    files: dict[str, pathlib.Path]


def default_data_dir(environ: Mapping[str, str] | None = None) -> pathlib.Path:
    """``$LABELCAST_DATA_DIR/tb-signs``, else ``$XDG_CACHE_HOME/labelcast/tb-signs``, else
    ``~/.cache/labelcast/tb-signs``."""
    environ = os.environ if environ is None else environ
    if environ.get("LABELCAST_DATA_DIR"):
        return pathlib.Path(environ["LABELCAST_DATA_DIR"]).expanduser() / "tb-signs"
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "labelcast" / "tb-signs"


def cached(folder: pathlib.Path) -> TbSigns | None:
    """The sets in ``folder`` when all of them are there, else None."""
    files = {name: folder / name for name in SETS}
    return TbSigns(folder, files) if all(p.is_file() for p in files.values()) else None


def fetch_tb_signs(folder: pathlib.Path, force: bool = False, session=None, index_url: str = INDEX_URL) -> TbSigns:
    """Download the ``bob.med.tb`` sdist (unless the sets are already in ``folder``) and extract.

    Parameters
    ----------
    folder : Path
        Cache folder; created when missing.
    force : bool
        Download and extract again even when the files are there.
    session : requests.Session, optional
        For the HTTP requests.
    index_url : str
        The simple index, ``{project}`` standing for the project's normalised name.

    Raises
    ------
    DownloadError
        PyPI unreachable, the release or its sdist missing, or a sha256 mismatch.
    DataFormatError
        The archive lacks one of :data:`SETS`.
    """
    if not force and (found := cached(folder)) is not None:
        return found
    archive_name, url, sha256 = _sdist_location(session, index_url)
    data = _download(url, session)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise DownloadError(f"{archive_name}: sha256 {digest} differs from PyPI's {sha256}")
    return extract_tb_signs(data, archive_name, folder)


def extract_tb_signs(archive: bytes, archive_name: str, folder: pathlib.Path) -> TbSigns:
    """Write :data:`SETS` from an sdist (``.zip`` or ``.tar.gz`` bytes) into ``folder``.

    Each JSON set is checked to be the TB-signs format (``train``/``validation``/``test``
    lists) before it is written; files are written whole (temporary name, then renamed).
    """
    members = _read_members(archive, archive_name)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, data in members.items():
        if name.endswith(".json"):
            _check_sets(data, f"{archive_name}:{SETS[name]}")
        path = folder / name
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
        files[name] = path
    return TbSigns(folder, files)


def _read_members(archive: bytes, archive_name: str) -> dict[str, bytes]:
    """The bytes of each of :data:`SETS`, found below the archive's single top folder."""
    if archive_name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            contents = {n: (lambda n=n: zf.read(n)) for n in zf.namelist()}
            return _pick(contents, archive_name)
    if archive_name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tf:
            regular = {m.name: m for m in tf.getmembers() if m.isfile()}
            contents = {n: (lambda m=m: _read_regular(tf, m)) for n, m in regular.items()}
            return _pick(contents, archive_name)
    raise DataFormatError(f"{archive_name}: not a .zip or .tar.gz source distribution")


def _read_regular(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    file = tf.extractfile(member)
    assert file is not None  # extractfile gives None only for a member that is not a regular file
    return file.read()


def _pick(contents: dict, archive_name: str) -> dict[str, bytes]:
    by_suffix = {}
    for member in contents:
        top, _, rest = member.partition("/")
        by_suffix[rest] = member
    missing = [path for path in SETS.values() if path not in by_suffix]
    if missing:
        raise DataFormatError(f"{archive_name} lacks {', '.join(missing)}")
    return {name: contents[by_suffix[path]]() for name, path in SETS.items()}


def _check_sets(data: bytes, where: str) -> None:
    try:
        sets = json.loads(data)
    except ValueError as exc:
        raise DataFormatError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(sets, dict) or not sets or not all(isinstance(v, list) for v in sets.values()):
        raise DataFormatError(f"{where}: expected {{split: [[image, label, [signs...]], ...]}}")


def _sdist_location(session, index_url: str) -> tuple[str, str, str]:
    """``(file name, URL, sha256)`` of the release's sdist, from PyPI's JSON simple index."""
    project, version = SDIST
    page = index_url.format(project=project.replace(".", "-"))
    response = _get(page, session, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        files = response.json()["files"]
    except (ValueError, KeyError) as exc:
        raise DownloadError(f"PyPI's index for {project} is not the expected JSON: {exc}") from exc
    stem = f"{project}-{version}"
    for entry in files:
        name = entry.get("filename", "")
        if name in (f"{stem}.zip", f"{stem}.tar.gz") and not entry.get("yanked"):
            sha256 = (entry.get("hashes") or {}).get("sha256")
            if not sha256:
                raise DownloadError(f"PyPI lists {name} without a sha256")
            if index_url == INDEX_URL and sha256 != SDIST_SHA256:
                raise DownloadError(f"PyPI now lists {name} with sha256 {sha256}, not {SDIST_SHA256}")
            return name, urllib.parse.urljoin(page, entry["url"]), sha256
    raise DownloadError(f"PyPI lists no source distribution of {project}=={version}")


def _download(url: str, session) -> bytes:
    return _get(url, session).content


def _get(url: str, session, headers: dict | None = None):
    import requests

    getter = session or requests
    try:
        response = getter.get(url, headers=headers or {}, timeout=DOWNLOAD_TIMEOUT_S)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise DownloadError(f"{url} answered HTTP {response.status_code}")
    return response
