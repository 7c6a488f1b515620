"""``labelcast embed``: embed a folder, a CSV or a Label Studio export into an .npz for ``simulate``.

SOURCE is one of

- a folder: every JPEG, PNG, DICOM (also without a file suffix) and TIFF/BMP/WebP file below
  it, in path order; with
  ``--folder-labels`` the first sub-folder name is the label (``normal/…``, ``tb/…``);
- a CSV (or TSV) file: a path/URL column (``path``, ``image``, ``file``, ``filename``,
  ``url``, ``image_path``, or ``--path-column``) and an optional label column (``label``,
  ``y``, ``target``, ``class``, or ``--label-column``); relative paths are relative to the CSV;
- a Label Studio JSON export (``JSON`` or ``JSON_MIN``): the task's image URL, and the choice
  of its latest non-cancelled annotation as label. Image references may be local paths,
  ``file://``, ``http(s)://``, ``data:`` URIs, ``/data/local-files/?d=…`` (with
  ``--local-files-root``) or ``/data/upload/…`` (with ``--label-studio-url`` and ``--api-key``).

The output ``.npz`` holds ``X`` (n × d float32, unit rows), ``y`` (n, 0/1, when every image has
a label that maps to 0/1: numeric 0/1 labels, or ``--positive NAME``), ``ids``, ``paths``,
``labels`` (the raw label strings, when there are labels), ``failed`` (references that could
not be read or decoded, left out of ``X``), ``encoder_id`` and ``encoder_spec``.

Images go through the service's embedding pipeline (:mod:`backend.pipeline`): URLs are
downloaded by its SSRF-safe fetcher (hosts on loopback or private networks only when listed in
``ALLOWED_IMAGE_HOSTS``; Label Studio's own media paths with ``--label-studio-url``), many at a
time, and decoded on every core. Embeddings are kept by encoder id and image SHA-256 in
``--cache`` (a LabelCast SQLite store; default: next to the output), written batch by batch: an
interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sqlite3
import sys
import urllib.parse
from dataclasses import dataclass

import numpy as np

from backend.exceptions import CommandError, ImageFetchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm", ".dicom", ".tif", ".tiff", ".bmp", ".webp")
"""File endings collected from a SOURCE folder (case-insensitive)."""

PATH_COLUMNS = ("path", "image", "file", "filename", "filepath", "url", "image_path", "image_url")
LABEL_COLUMNS = ("label", "y", "target", "class")

CHUNK_IMAGES = 64
"""Images per encoder batch, each stored in the cache when done (the resumable unit)."""

_ONE = {"1", "1.0", "true", "yes", "positive", "pos"}
_ZERO = {"0", "0.0", "false", "no", "negative", "neg"}


@dataclass(frozen=True)
class Item:
    """One image to embed: its id, where its bytes are, and its label (None when unknown)."""

    id: str
    ref: str
    label: str | None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed images (folder, CSV, Label Studio export) into an .npz for simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", help="folder, .csv/.tsv file or Label Studio .json export")
    parser.add_argument("--out", required=True, metavar="FILE.npz", help="output file")
    parser.add_argument(
        "--encoder",
        default="xrayclip",
        metavar="SPEC",
        help="encoder preset or spec (default xrayclip; see `labelcast encoders`)",
    )
    parser.add_argument(
        "--cache",
        metavar="FILE.sqlite",
        help="embedding cache (default: OUT with .cache.sqlite instead of .npz)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: sized to the device)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="autocast dtype (default auto: bf16 on CUDA, fp32 on CPU; bf16 is much faster on recent CPUs)",
    )
    parser.add_argument("--positive", metavar="LABEL", help="the label that means y = 1 (all others 0)")
    parser.add_argument("--folder-labels", action="store_true", help="label folder images by their first sub-folder")
    parser.add_argument("--path-column", help="CSV column holding the image path or URL")
    parser.add_argument("--label-column", help="CSV column holding the label")
    parser.add_argument(
        "--data-key",
        help="Label Studio task data key of the image (default: image, or the only one)",
    )
    parser.add_argument(
        "--local-files-root",
        metavar="DIR",
        help="LOCAL_FILES_DOCUMENT_ROOT of Label Studio, for /data/local-files/?d= URLs",
    )
    parser.add_argument("--label-studio-url", metavar="URL", help="Label Studio base URL, for /data/upload/ URLs")
    parser.add_argument("--api-key", help="Label Studio API token, sent to --label-studio-url only")
    parser.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never download weights (also on with HF_HUB_OFFLINE=1)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.encoders import load_encoder
    from backend.pipeline import Pipeline

    source = pathlib.Path(args.source)
    out = pathlib.Path(args.out)
    if out.suffix != ".npz":
        raise CommandError(f"--out {str(out)!r} must end in .npz")
    if not out.parent.is_dir():
        raise CommandError(f"--out folder {str(out.parent)!r} does not exist")
    items = read_source(source, args)
    if not items:
        raise CommandError(f"no images found in {str(source)!r}")
    y = labels_to_y([item.label for item in items], args.positive)
    cache = _open_cache(pathlib.Path(args.cache) if args.cache else out.with_suffix(".cache.sqlite"))
    encoder = load_encoder(
        args.encoder,
        device=args.device,
        batch_size=args.batch_size,
        offline=args.offline,
        precision=args.precision,
    )
    fetch = _Reader(source, args)

    from tqdm import tqdm

    vectors = np.full((len(items), encoder.dim), np.nan, dtype=np.float32)
    failures: dict[int, str] = {}
    progress = tqdm(
        total=len(items),
        unit="img",
        desc=f"embed {encoder.id}",
        disable=args.quiet,
        file=sys.stderr,
    )
    pipeline = Pipeline(encoder, cache, batch_size=CHUNK_IMAGES)
    try:
        for results in pipeline.run(((i, item.ref) for i, item in enumerate(items)), fetch):
            for result in results:
                if result.vector is not None:
                    vectors[result.key] = result.vector
                else:
                    assert result.error is not None  # the pipeline gives each result a vector or an error
                    failures[result.key] = result.error
            progress.update(len(results))
    finally:
        pipeline.close()
        progress.close()
    kept = [i for i in range(len(items)) if i not in failures]
    for index in sorted(failures):
        reason = failures[index]
        where = "" if items[index].ref in reason else f"{items[index].ref}: "
        print(f"labelcast embed: skipped {where}{reason}", file=sys.stderr)
    payload = {
        "X": vectors[kept],
        "ids": np.array([items[i].id for i in kept], dtype=str),
        "paths": np.array([items[i].ref for i in kept], dtype=str),
        "failed": np.array([items[i].ref for i in sorted(failures)], dtype=str),
        "encoder_id": np.array(encoder.id),
        "encoder_spec": np.array(args.encoder),
    }
    if any(item.label is not None for item in items):
        payload["labels"] = np.array([items[i].label or "" for i in kept], dtype=str)
    if y is not None:
        payload["y"] = y[kept]
    _save_npz(out, payload)
    summary = f"wrote {out}: X {payload['X'].shape[0]}×{encoder.dim}"
    summary += ", y" if y is not None else ", no y (labels missing or not 0/1; see --positive)"
    if failures:
        summary += f", {len(failures)} image(s) skipped"
    print(summary, file=sys.stderr)
    return 1 if not kept else 0


def _open_cache(path: pathlib.Path):
    """The embedding cache: a LabelCast SQLite store (the service's own), refusing a file in
    the older cache layout instead of failing mid-run."""
    from backend.store import SQLiteStore

    if path.is_file():
        try:
            with sqlite3.connect(path) as connection:
                columns = [row[1] for row in connection.execute("PRAGMA table_info(embeddings)")]
        except sqlite3.DatabaseError as exc:
            raise CommandError(f"--cache {str(path)!r} is not a SQLite file: {exc}") from None
        if "sha256" in columns:
            raise CommandError(
                f"--cache {str(path)!r} was written by an older labelcast embed; delete it or pass "
                f"another --cache (the images are then embedded again)"
            )
    return SQLiteStore(path)


def _save_npz(path: pathlib.Path, payload: dict) -> None:
    """Write atomically: a half-written file never replaces a good one."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **payload)
    os.replace(partial, path)


# --- labels -----------------------------------------------------------------------------------


def labels_to_y(labels: list[str | None], positive: str | None) -> np.ndarray | None:
    """0/1 labels for ``simulate``, or None when some image has no label.

    Parameters
    ----------
    labels : list of str or None
        Raw labels, None where unknown.
    positive : str or None
        The label meaning 1; without it labels must read as 0/1 (``0``/``1``, ``true``/``false``,
        ``yes``/``no``, ``positive``/``negative``).

    Returns
    -------
    ndarray of shape (n,), int64, or None

    Raises
    ------
    CommandError
        If ``positive`` is not among the labels, or the labels are not 0/1 and no
        ``positive`` was given (checked before any image is embedded).
    """
    known = [label for label in labels if label is not None]
    if not known:
        if positive is not None:
            raise CommandError(f"--positive {positive!r} given but the source has no labels")
        return None
    distinct = sorted(set(known))
    if positive is not None:
        if positive not in distinct:
            raise CommandError(f"--positive {positive!r} is not among the labels {distinct[:20]}")
        y = [None if label is None else int(label == positive) for label in labels]
    else:
        unknown = [label for label in distinct if label.strip().lower() not in _ONE | _ZERO]
        if unknown:
            raise CommandError(f"labels {distinct[:20]} are not 0/1; pass --positive LABEL to say which one is 1")
        y = [None if label is None else int(label.strip().lower() in _ONE) for label in labels]
    if any(value is None for value in y):
        return None
    return np.asarray(y, dtype=np.int64)


# --- sources ----------------------------------------------------------------------------------


def read_source(source: pathlib.Path, args) -> list[Item]:
    """The images a SOURCE names, in order, with labels where the source has them."""
    if source.is_dir():
        return _read_folder(source, bool(getattr(args, "folder_labels", False)))
    if not source.is_file():
        raise CommandError(f"SOURCE {str(source)!r} is neither a folder nor a file")
    suffix = source.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_csv(source, getattr(args, "path_column", None), getattr(args, "label_column", None))
    if suffix == ".json":
        return _read_label_studio(source, getattr(args, "data_key", None))
    raise CommandError(f"SOURCE {str(source)!r}: expected a folder, a .csv/.tsv file or a Label Studio .json export")


def _read_folder(folder: pathlib.Path, folder_labels: bool) -> list[Item]:
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and (path.suffix.lower() in IMAGE_SUFFIXES or _is_bare_dicom(path))
    )
    items = []
    for path in files:
        relative = path.relative_to(folder)
        label = None
        if folder_labels:
            if len(relative.parts) < 2:
                raise CommandError(f"--folder-labels: {relative} is not inside a label sub-folder of {folder}")
            label = relative.parts[0]
        items.append(Item(relative.as_posix(), relative.as_posix(), label))
    return items


def _is_bare_dicom(path: pathlib.Path) -> bool:
    """A file without an image suffix that starts with the DICOM preamble (PACS exports)."""
    if path.suffix and path.suffix.lower() not in (".", ".ima"):
        return False
    with open(path, "rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _read_csv(path: pathlib.Path, path_column: str | None, label_column: str | None) -> list[Item]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = reader.fieldnames or []
        lowered = {name.strip().lower(): name for name in columns}
        image_col = _column(path, columns, lowered, path_column, PATH_COLUMNS, "image path")
        label_col = (
            _column(path, columns, lowered, label_column, LABEL_COLUMNS, "label")
            if label_column or any(name in lowered for name in LABEL_COLUMNS)
            else None
        )
        items = []
        for row_number, row in enumerate(reader, start=2):
            ref = (row.get(image_col) or "").strip()
            if not ref:
                raise CommandError(f"{path}:{row_number}: empty {image_col!r}")
            label = (row.get(label_col) or "").strip() if label_col else ""
            items.append(Item(f"row{row_number}", ref, label or None))
    return items


def _column(path, columns, lowered, wanted, defaults, what) -> str:
    if wanted:
        if wanted not in columns:
            raise CommandError(f"{path}: no column {wanted!r}; columns are {columns}")
        return wanted
    for name in defaults:
        if name in lowered:
            return lowered[name]
    raise CommandError(f"{path}: no {what} column; expected one of {list(defaults)} (columns: {columns})")


def _read_label_studio(path: pathlib.Path, data_key: str | None) -> list[Item]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: not readable JSON: {exc}") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise CommandError(f"{path}: expected a list of Label Studio tasks, got {type(tasks).__name__}")
    items = []
    for number, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise CommandError(f"{path}: task {number} is {type(task).__name__}; expected an object")
        nested = task.get("data")
        data = nested if isinstance(nested, dict) else task  # JSON or JSON_MIN
        key = data_key or _image_key(data)
        if key is None or not isinstance(data.get(key), str):
            raise CommandError(
                f"{path}: task {task.get('id', number)} has no image reference"
                f"{f' under {data_key!r}' if data_key else ''}; pass --data-key"
            )
        items.append(Item(str(task.get("id", number)), data[key], _task_label(task)))
    return items


def _image_key(data: dict) -> str | None:
    if isinstance(data.get("image"), str):
        return "image"
    strings = [k for k, v in data.items() if isinstance(v, str) and k not in ("choice", "id")]
    looks = [k for k in strings if _looks_like_image(data[k])]
    return looks[0] if len(looks) == 1 else (strings[0] if len(strings) == 1 else None)


def _looks_like_image(value: str) -> bool:
    lowered = value.lower().split("?")[0]
    return value.startswith(
        ("http://", "https://", "/data/", "data:image", "file://", "s3://", "gs://")
    ) or lowered.endswith(IMAGE_SUFFIXES)


def _task_label(task: dict) -> str | None:
    """The first choice of the latest non-cancelled annotation (or JSON_MIN's ``choice``)."""
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    for annotation in sorted(
        annotations,
        key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""),
        reverse=True,
    ):
        for result in annotation.get("result") or []:
            if result.get("type") == "choices":
                choices = (result.get("value") or {}).get("choices") or []
                if choices:
                    return str(choices[0])
    choice = task.get("choice")
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("choices"):
        return str(choice["choices"][0])
    return None


# --- reading bytes ----------------------------------------------------------------------------


class _Reader:
    """``(index, ref) -> bytes`` for the pipeline: local files (paths, ``file://``, local-files
    under ``--local-files-root``) are read here; everything else (``http(s)``, ``data:``,
    Label Studio's media paths) goes through the service's SSRF-safe fetcher. Failures raise
    ImageFetchError, which the pipeline reports as one skipped image."""

    def __init__(self, source: pathlib.Path, args):
        from backend.labelstudio.client import LabelStudioClient

        self.base = source if source.is_dir() else source.parent
        self.local_root = getattr(args, "local_files_root", None)
        self.ls_url = (getattr(args, "label_studio_url", None) or "").rstrip("/")
        self.client = LabelStudioClient(
            self.ls_url or None,
            getattr(args, "api_key", None),
            allowed_hosts=os.environ.get("ALLOWED_IMAGE_HOSTS") or None,
        )

    def __call__(self, index: int, ref: str) -> bytes:
        path = self._local_path(ref)
        if path is None:
            return self.client.fetch_image(ref, index)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageFetchError(f"cannot read {ref}: {exc.strerror or exc}") from None

    def _local_path(self, ref: str) -> pathlib.Path | None:
        if ref.startswith("file://"):
            return pathlib.Path(urllib.parse.unquote(urllib.parse.urlparse(ref).path))
        if ref.startswith("/data/local-files/"):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(ref).query)
            if self.local_root and query.get("d"):
                return pathlib.Path(self.local_root) / query["d"][0]
            if not self.ls_url:
                raise ImageFetchError("a /data/local-files/ URL needs --local-files-root (or --label-studio-url)")
            return None
        if ref.startswith("/data/"):
            if not self.ls_url:
                raise ImageFetchError(
                    f"a {ref.split('?')[0].rsplit('/', 1)[0]}/ URL needs --label-studio-url and --api-key"
                )
            return None
        if ref.startswith("data:") or "://" in ref:
            return None
        path = pathlib.Path(ref)
        return path if path.is_absolute() else self.base / path
