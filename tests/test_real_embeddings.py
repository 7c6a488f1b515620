"""benchmarks/real_embeddings.py: wheel members read from the cache, the image and river sets, MobileNetV2
features of grey images."""

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


def test_river_csv_reads_gz_and_zip_members(tmp_path):
    """A gzip-compressed CSV and a zip archive of one CSV come back as float features, the last
    column as text, and the feature names; a member of another kind is named in the error."""
    import gzip

    table = "a,b,target\n1,2.5,x\n3,-4,y\n"
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("t.csv.zip", table)
    with zipfile.ZipFile(tmp_path / "river-0.26.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr("river/datasets/t.csv.gz", gzip.compress(table.encode()))
        wheel.writestr("river/datasets/t.csv.zip", inner.read_bytes())
        wheel.writestr("river/datasets/t.csv", table)
    for member in ("river/datasets/t.csv.gz", "river/datasets/t.csv.zip"):
        X, target, names = real_embeddings.river_csv(member, tmp_path)
        np.testing.assert_array_equal(X, [[1.0, 2.5], [3.0, -4.0]])
        assert list(target) == ["x", "y"] and names == ["a", "b"]
    with pytest.raises(ValueError, match="end in .gz or .zip"):
        real_embeddings.river_csv("river/datasets/t.csv", tmp_path)


def test_river_segment_table_has_its_documented_shape_and_classes():
    """river 0.26.1's Image Segmentation file: 2,310 x 18, 7 classes of 330, all values finite.
    (Its Shuttle file is not read: it is OpenML 40685's data, an odd id.)"""
    X, category, names = real_embeddings.river_csv("river/datasets/segment.csv.zip")
    assert X.shape == (2310, 18) and len(names) == 18 and np.isfinite(X).all()
    classes, counts = np.unique(category, return_counts=True)
    assert list(classes) == ["brickface", "cement", "foliage", "grass", "path", "sky", "window"]
    assert list(counts) == [330] * 7


def test_lfw_faces_are_200_grey_crops_faces_first():
    """scikit-image 0.26.0's LFW subset: 200 distinct 25 x 25 uint8 crops, the first 100 faces."""
    images, is_face, digest = real_embeddings.lfw_faces()
    assert images.shape == (200, 25, 25) and images.dtype == np.uint8
    assert is_face.dtype == np.int8 and list(is_face) == [1] * 100 + [0] * 100
    assert len(np.unique(images.reshape(200, -1), axis=0)) == 200
    assert images.min() < 20 and images.max() > 235  # the whole 8-bit range is used, not [0, 1]
    assert len(digest) == 64


@pytest.mark.slow
def test_image_embeddings_of_lfw_crops_are_cached(tmp_path, monkeypatch, mobilenet_v2_weights_file):
    """Four real LFW crops (two faces, two not) through the MNIST code path: 1280 finite,
    non-negative features each at 112 px, written once to the cache and read back from it."""
    images, is_face, digest = real_embeddings.lfw_faces()
    rows = [0, 1, 198, 199]
    monkeypatch.setitem(real_embeddings.IMAGE_SETS, "lfw4", lambda cache: (images[rows], is_face[rows], digest))
    X, labels = real_embeddings.image_embeddings("lfw4", size=112, cache=tmp_path)
    assert X.shape == (4, 1280) and X.dtype == np.float32
    assert np.isfinite(X).all() and (X >= 0).all() and list(labels) == [1, 1, 0, 0]
    (cached,) = tmp_path.glob("lfw4-*-112px.npy")
    np.testing.assert_array_equal(np.load(cached), X)
    np.save(cached, X + 1.0)  # what is cached is what comes back
    np.testing.assert_array_equal(real_embeddings.image_embeddings("lfw4", size=112, cache=tmp_path)[0], X + 1.0)


def test_image_embeddings_names_an_unknown_set(tmp_path):
    """An image set that is not in IMAGE_SETS is refused with the known ones named."""
    with pytest.raises(ValueError, match="unknown image set 'cifar'.*mnist5k, lfw200"):
        real_embeddings.image_embeddings("cifar", cache=tmp_path)
