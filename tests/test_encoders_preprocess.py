"""Tests of backend.encoders.preprocess: the same pixels as each library's own preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.encoders import Preprocess

torch = pytest.importorskip("torch")


def _photo(width: int = 90, height: int = 64, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.BILINEAR)
    return image.convert(mode)


@pytest.mark.parametrize(
    "processor_name, kwargs",
    [
        pytest.param(
            "CLIPImageProcessorPil",
            dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
            id="clip",
        ),
        pytest.param("SiglipImageProcessorPil", dict(size={"height": 40, "width": 40}), id="siglip"),
        pytest.param(
            "BitImageProcessorPil",
            dict(
                size={"shortest_edge": 40},
                crop_size={"height": 36, "width": 36},
                image_mean=[0.53, 0.53, 0.53],
                image_std=[0.26, 0.26, 0.26],
            ),
            id="rad-dino-bit",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_hf_config_reproduces_the_transformers_processor(tmp_path, processor_name, kwargs, mode):
    """Preprocess.from_hf_config gives the pixels of the saved transformers processor."""
    import json

    import transformers

    processor = getattr(transformers, processor_name)(**kwargs)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    ours = Preprocess.from_hf_config(config)
    image = _photo(mode=mode)
    expected = processor(images=[image], return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(ours.image(image), expected, atol=1e-4)


def test_hf_legacy_integer_sizes():
    """Old configs with integer size/crop_size mean shortest edge + crop."""
    config = {"size": 224, "crop_size": 224, "do_center_crop": True, "resample": 3}
    preprocess = Preprocess.from_hf_config(config)
    assert (preprocess.size, preprocess.resize_mode, preprocess.crop) == (224, "shortest", 224)


def test_hf_config_without_resize_is_refused():
    """A preprocessor config without a fixed size raises ValueError naming it."""
    with pytest.raises(ValueError, match="without a resize"):
        Preprocess.from_hf_config({"do_resize": False})


def test_open_clip_config_reproduces_open_clip_transform():
    """Preprocess.from_open_clip gives the pixels of open_clip's own image_transform."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(size=32, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    transform = image_transform_v2(cfg, is_train=False)
    ours = Preprocess.from_open_clip(
        {
            "size": 32,
            "mean": cfg.mean,
            "std": cfg.std,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        }
    )
    image = _photo(90, 64)
    np.testing.assert_allclose(ours.image(image), transform(image).numpy(), atol=1e-4)


def test_torchvision_transforms_are_reproduced():
    """Preprocess.from_torchvision is close to torchvision's ImageClassification transform."""
    import torchvision

    transforms = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    ours = Preprocess.from_torchvision(transforms)
    assert (ours.size, ours.crop, ours.interpolation) == (232, 224, "bilinear")
    image = _photo(400, 300)
    expected = transforms(image).numpy()
    assert np.abs(ours.image(image) - expected).mean() < 0.02


def test_grayscale_is_repeated_into_three_channels():
    """A grayscale image gives three channels equal before normalisation."""
    preprocess = Preprocess(size=16, crop=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    out = preprocess.image(_photo(mode="L"))
    assert out.shape == (3, 16, 16)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[1], out[2])


def test_longest_mode_pads_to_a_square():
    """resize_mode='longest' keeps the whole image and pads the short side with fill."""
    preprocess = Preprocess(size=20, resize_mode="longest", mean=(0, 0, 0), std=(1, 1, 1), fill=0)
    out = preprocess.image(Image.new("L", (40, 20), 255))
    assert out.shape == (3, 20, 20)
    assert out[0, 0, 10] == 0 and out[0, 10, 10] == pytest.approx(1.0)


def test_tensor_path_matches_pil_path():
    """tensor_batch (the GPU path) is within a small tolerance of the PIL path."""
    preprocess = Preprocess(size=32, crop=32, interpolation="bicubic")
    images = [_photo(90, 64), _photo(64, 90, mode="L")]
    tensors = [
        torch.from_numpy(np.asarray(images[0]).transpose(2, 0, 1).copy()),
        torch.from_numpy(np.asarray(images[1])[None].copy()),
    ]
    pil = preprocess.batch(images)
    gpu_style = preprocess.tensor_batch(tensors).numpy()
    assert gpu_style.shape == pil.shape == (2, 3, 32, 32)
    assert np.abs(gpu_style - pil).mean() < 0.05


def test_resized_shape_keeps_aspect_ratio_like_transformers():
    """Shortest-edge resizing truncates the long side as transformers does."""
    preprocess = Preprocess(size=224)
    assert preprocess.resized_shape(2048, 1500) == (int(224 * 2048 / 1500), 224)
    assert preprocess.resized_shape(1500, 2048) == (224, int(224 * 2048 / 1500))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        pytest.param(dict(size=10, resize_mode="stretch"), "resize_mode='stretch'", id="mode"),
        pytest.param(dict(size=10, interpolation="cubic"), "interpolation='cubic'", id="interp"),
        pytest.param(dict(size=0), "positive", id="size"),
        pytest.param(dict(size=10, std=(1, 0, 1)), "std > 0", id="std"),
    ],
)
def test_invalid_preprocess_values_are_refused(kwargs, fragment):
    """Bad Preprocess fields raise ValueError naming the value."""
    with pytest.raises(ValueError, match=fragment):
        Preprocess(**kwargs)


def test_fingerprint_changes_with_any_field():
    """The fingerprint (part of the encoder id) differs when preprocessing differs."""
    assert Preprocess(size=224).fingerprint() != Preprocess(size=224, crop=224).fingerprint()
    assert Preprocess(size=224).fingerprint() == Preprocess(size=224).fingerprint()


def test_16bit_pil_images_are_stretched_not_clipped():
    """A 16-bit PIL image handed to preprocessing is stretched to 8 bits like decode_image does."""
    values = np.linspace(0, 4095, 16 * 16).reshape(16, 16).astype(np.uint16)
    preprocess = Preprocess(size=16, crop=16, mean=(0, 0, 0), std=(1, 1, 1))
    out = preprocess.image(Image.fromarray(values))
    assert out.min() == 0.0 and out.max() == 1.0
    assert 0.4 < out.mean() < 0.6
