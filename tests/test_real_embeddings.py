"""benchmarks/real_embeddings.py: wheel members read from the cache, MobileNetV2 features of grey images."""

from __future__ import annotations

import importlib.util
import pathlib
import zipfile

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "real_embeddings.py"
_spec = importlib.util.spec_from_file_location("real_embeddings", SCRIPT)
assert _spec is not None and _spec.loader is not None
real_embeddings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real_embeddings)


def _digit_like(shift: int = 0) -> np.ndarray:
    """A 28 x 28 grey image of a vertical stroke, moved ``shift`` pixels right."""
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 12 + shift : 16 + shift] = 255
    return image


def test_wheel_member_reads_a_cached_wheel_without_pip(tmp_path):
    """A wheel already in the cache is read as it is: no download, the member's exact bytes."""
    with zipfile.ZipFile(tmp_path / "some_pkg-1.2-py3-none-any.whl", "w") as wheel:
        wheel.writestr("some_pkg/data/table.csv", "a,b\n1,2\n")
    assert real_embeddings.wheel_member("some-pkg==1.2", "some_pkg/data/table.csv", tmp_path) == b"a,b\n1,2\n"


def test_wheel_path_needs_a_pinned_version(tmp_path):
    """An unpinned requirement is refused before pip is asked."""
    with pytest.raises(ValueError, match="pin a version"):
        real_embeddings.wheel_path("some-pkg", tmp_path)


@pytest.mark.slow
def test_real_mobilenet_features_of_grey_images(mobilenet_v2_weights_file):
    """The real ImageNet weights give 1280 pooled, non-negative features per grey image, the same
    for the same image, and a stroke is closer to itself moved than to a ring or to noise."""
    ring = np.zeros((28, 28), np.uint8)
    yy, xx = np.mgrid[:28, :28]
    ring[np.abs(np.hypot(yy - 14, xx - 14) - 8) < 2] = 255
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    images = np.stack([_digit_like(), _digit_like(2), ring, noise])
    X = real_embeddings.embed_images(images, mobilenet_v2_weights_file, size=64, batch=3)
    assert X.shape == (4, 1280) and X.dtype == np.float32
    assert np.isfinite(X).all() and (X >= 0).all()
    again = real_embeddings.embed_images(images[:1], mobilenet_v2_weights_file, size=64)
    np.testing.assert_allclose(again[0], X[0], rtol=1e-4, atol=1e-5)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > max(unit[0] @ unit[2], unit[0] @ unit[3]) + 0.05


def test_embed_images_refuses_what_it_cannot_embed(tmp_path):
    """Colour or float images, and sizes below MobileNetV2's stride, are named in the error."""
    with pytest.raises(ValueError, match="uint8 of shape"):
        real_embeddings.embed_images(np.zeros((2, 28, 28, 3), np.uint8), tmp_path / "unused.pth")
    with pytest.raises(ValueError, match="at least 32 pixels"):
        real_embeddings.embed_images(np.zeros((2, 28, 28), np.uint8), tmp_path / "unused.pth", size=16)
