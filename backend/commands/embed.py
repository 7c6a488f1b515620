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

Embeddings are cached by encoder id and image SHA-256 in ``--cache`` (default: next to the
output), written after every chunk: an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import pathlib
import sys
import threading
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from backend.exceptions import CommandError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm", ".dicom", ".tif", ".tiff", ".bmp", ".webp")
"""File endings collected from a SOURCE folder (case-insensitive)."""

PATH_COLUMNS = ("path", "image", "file", "filename", "filepath", "url", "image_path", "image_url")
LABEL_COLUMNS = ("label", "y", "target", "class")

CHUNK_IMAGES = 256
"""Images read, embedded and cached per step (the resumable unit)."""

FETCH_THREADS = 8
"""Concurrent reads/downloads of image bytes."""

FETCH_TIMEOUT_S = 60.0
"""Seconds to wait for one HTTP download."""

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
    parser.add_argument(
        "source", metavar="SOURCE", help="folder, .csv/.tsv file or Label Studio .json export"
    )
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
    parser.add_argument(
        "--batch-size", type=int, help="images per forward pass (default: sized to the device)"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="autocast dtype (default auto: bf16 on CUDA, fp32 on CPU; bf16 is "
        "much faster on recent CPUs)",
    )
    parser.add_argument(
        "--positive", metavar="LABEL", help="the label that means y = 1 (all others 0)"
    )
    parser.add_argument(
        "--folder-labels", action="store_true", help="label folder images by their first sub-folder"
    )
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
    parser.add_argument(
        "--label-studio-url", metavar="URL", help="Label Studio base URL, for /data/upload/ URLs"
    )
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
    from backend.embedding_cache import SQLiteEmbeddingCache, embed_cached
    from backend.encoders import load_encoder

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
    cache_path = pathlib.Path(args.cache) if args.cache else out.with_suffix(".cache.sqlite")
    cache = SQLiteEmbeddingCache(cache_path)
    encoder = load_encoder(
        args.encoder,
        device=args.device,
        batch_size=args.batch_size,
        offline=args.offline,
        precision=args.precision,
    )
    fetch = _Fetcher(source, args)

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
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for start in range(0, len(items), CHUNK_IMAGES):
            chunk = items[start : start + CHUNK_IMAGES]
            fetched = list(pool.map(fetch, [item.ref for item in chunk]))
            readable = [i for i, data in enumerate(fetched) if isinstance(data, bytes)]
            for i, data in enumerate(fetched):
                if not isinstance(data, bytes):
                    failures[start + i] = data

            def on_error(position, error, readable=readable, start=start):
                failures[start + readable[position]] = str(error)

            if readable:
                vectors[[start + i for i in readable]] = embed_cached(
                    encoder,
                    cache,
                    [fetched[i] for i in readable],
                    [chunk[i].ref for i in readable],
                    on_error=on_error,
                )
            progress.update(len(chunk))
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
            raise CommandError(
                f"labels {distinct[:20]} are not 0/1; pass --positive LABEL to say which one is 1"
            )
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
        return _read_csv(
            source, getattr(args, "path_column", None), getattr(args, "label_column", None)
        )
    if suffix == ".json":
        return _read_label_studio(source, getattr(args, "data_key", None))
    raise CommandError(
        f"SOURCE {str(source)!r}: expected a folder, a .csv/.tsv file or a Label Studio .json export"
    )


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
                raise CommandError(
                    f"--folder-labels: {relative} is not inside a label sub-folder of {folder}"
                )
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
    raise CommandError(
        f"{path}: no {what} column; expected one of {list(defaults)} (columns: {columns})"
    )


def _read_label_studio(path: pathlib.Path, data_key: str | None) -> list[Item]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: not readable JSON: {exc}") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise CommandError(
            f"{path}: expected a list of Label Studio tasks, got {type(tasks).__name__}"
        )
    items = []
    for number, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise CommandError(
                f"{path}: task {number} is {type(task).__name__}; expected an object"
            )
        data = task.get("data") if isinstance(task.get("data"), dict) else task  # JSON or JSON_MIN
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
    annotations = [
        a
        for a in task.get("annotations") or []
        if isinstance(a, dict) and not a.get("was_cancelled")
    ]
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


# --- fetching bytes ---------------------------------------------------------------------------


class _Fetcher:
    """Reads the bytes behind an image reference; returns bytes, or an error message string."""

    def __init__(self, source: pathlib.Path, args):
        self.base = source if source.is_dir() else source.parent
        self.local_root = getattr(args, "local_files_root", None)
        self.ls_url = (getattr(args, "label_studio_url", None) or "").rstrip("/")
        self.api_key = getattr(args, "api_key", None)
        self._access: str | None = None
        self._lock = threading.Lock()

    def __call__(self, ref: str):
        try:
            return self._read(ref)
        except CommandError as exc:
            return str(exc)
        except Exception as exc:  # network and file errors become one skipped image
            return f"{type(exc).__name__}: {exc}"

    def _read(self, ref: str) -> bytes:
        if ref.startswith("data:"):
            header, _, payload = ref.partition(",")
            return (
                base64.b64decode(payload)
                if header.endswith(";base64")
                else urllib.parse.unquote_to_bytes(payload)
            )
        if ref.startswith(("http://", "https://")):
            return self._download(ref)
        if ref.startswith("file://"):
            return pathlib.Path(urllib.parse.unquote(urllib.parse.urlparse(ref).path)).read_bytes()
        if ref.startswith("/data/local-files/"):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(ref).query)
            if self.local_root and query.get("d"):
                return (pathlib.Path(self.local_root) / query["d"][0]).read_bytes()
            if self.ls_url:
                return self._download(self.ls_url + ref)
            raise CommandError(
                "a /data/local-files/ URL needs --local-files-root (or --label-studio-url)"
            )
        if ref.startswith("/data/"):
            if not self.ls_url:
                raise CommandError(
                    f"a {ref.split('?')[0].rsplit('/', 1)[0]}/ URL needs --label-studio-url and --api-key"
                )
            return self._download(self.ls_url + ref)
        if "://" in ref:
            raise CommandError(
                f"unsupported URL scheme in {ref!r}; export with presigned http(s) URLs or local paths"
            )
        path = pathlib.Path(ref)
        return (path if path.is_absolute() else self.base / path).read_bytes()

    def _download(self, url: str) -> bytes:
        request = urllib.request.Request(url)
        if self.api_key and self.ls_url and url.startswith(self.ls_url + "/"):
            request.add_header("Authorization", self._authorization())
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
            return response.read()

    def _authorization(self) -> str:
        """``Token <key>`` for a legacy token; for a personal access token (a JWT refresh
        token) ``Bearer <access token>`` obtained once from ``/api/token/refresh``."""
        if self.api_key.count(".") != 2:
            return f"Token {self.api_key}"
        with self._lock:
            if self._access is None:
                body = json.dumps({"refresh": self.api_key}).encode()
                request = urllib.request.Request(
                    self.ls_url + "/api/token/refresh",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
                    self._access = json.loads(response.read())["access"]
        return f"Bearer {self._access}"
