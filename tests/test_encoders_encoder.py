"""Tests of backend.encoders.encoder: batching, normalisation, bytes decoding, errors, laziness."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from backend.encoders import Encoder, LazyEncoder, Preprocess, l2_normalise, load_encoder
from backend.encoders.encoder import CPU_BATCH_SIZE, resolve_device
from backend.exceptions import ImageDecodeError

torch = pytest.importorskip("torch")


class MeanColour(torch.nn.Module):
    """Features = per-channel mean and a constant: easy to predict, counts calls."""

    def __init__(self, fail_above: int | None = None):
        super().__init__()
        self.calls: list[int] = []
        self.fail_above = fail_above

    def forward(self, pixels):
        self.calls.append(len(pixels))
        if self.fail_above is not None and len(pixels) > self.fail_above:
            raise torch.cuda.OutOfMemoryError("simulated")
        return torch.cat([pixels.mean(dim=(2, 3)), torch.ones(len(pixels), 1)], dim=1)


def _encoder(model=None, **kwargs) -> Encoder:
    preprocess = Preprocess(size=8, crop=8, mean=(0, 0, 0), std=(1, 1, 1))
    return Encoder(
        id="test@1",
        dim=4,
        model=model or MeanColour(),
        preprocess=preprocess,
        device="cpu",
        **kwargs,
    )


def _png(value: int, size=(20, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, value).save(buffer, format="PNG")
    return buffer.getvalue()


def test_embed_batches_and_normalises():
    """embed splits into batch_size chunks and returns unit rows in input order."""
    model = MeanColour()
    encoder = _encoder(model, batch_size=3)
    images = [Image.new("L", (10, 10), v) for v in (0, 51, 102, 153, 204, 255, 0)]
    out = encoder.embed(images)
    assert model.calls == [3, 3, 1]
    assert out.shape == (7, 4) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    expected = l2_normalise(np.array([[v / 255] * 3 + [1.0] for v in (0, 51, 102, 153, 204, 255, 0)]))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_embed_empty_gives_zero_rows():
    """No images give an empty (0, dim) array without calling the model."""
    model = MeanColour()
    assert _encoder(model).embed([]).shape == (0, 4) and model.calls == []


def test_embed_bytes_equals_embed_of_decoded_images(chest_xray_png_bytes):
    """embed_bytes (threaded decode) gives the same rows as decode_image + embed."""
    from backend.images import decode_image

    encoder = _encoder(batch_size=2)
    datas = [chest_xray_png_bytes, _png(10), _png(200), chest_xray_png_bytes, _png(90)]
    expected = encoder.embed([decode_image(d) for d in datas])
    np.testing.assert_allclose(encoder.embed_bytes(datas), expected, atol=1e-6)


def test_embed_bytes_reports_bad_images_and_keeps_going():
    """With on_error, undecodable images give NaN rows and are reported by index."""
    encoder = _encoder(batch_size=2)
    errors = []
    out = encoder.embed_bytes(
        [_png(10), b"garbage", _png(200), b""],
        ["a.png", "b.png", "c.png", "d.png"],
        on_error=lambda i, e: errors.append((i, str(e))),
    )
    assert [i for i, _ in errors] == [1, 3] and "'b.png'" in errors[0][1]
    assert np.isnan(out[[1, 3]]).all() and np.isfinite(out[[0, 2]]).all()


def test_embed_bytes_raises_without_on_error():
    """Without on_error the first undecodable image raises ImageDecodeError."""
    with pytest.raises(ImageDecodeError, match="'bad.jpg'"):
        _encoder().embed_bytes([_png(1), b"\xff\xd8\xffjunk"], ["ok.png", "bad.jpg"])


def test_embed_bytes_respects_the_pixel_limit():
    """The encoder's max_pixels is applied to every decoded image."""
    with pytest.raises(ImageDecodeError, match="exceeds the limit"):
        _encoder(max_pixels=100).embed_bytes([_png(1, size=(20, 20))])


def test_embed_bytes_checks_filename_count():
    """A filenames list of another length raises ValueError."""
    with pytest.raises(ValueError, match="2 filenames for 1 images"):
        _encoder().embed_bytes([_png(1)], ["a", "b"])


def test_out_of_memory_halves_the_batch():
    """A CUDA out-of-memory error splits the batch in halves and lowers batch_size."""
    model = MeanColour(fail_above=2)
    encoder = _encoder(model, batch_size=8)
    out = encoder.embed([Image.new("L", (8, 8), 5)] * 8)
    assert out.shape == (8, 4) and np.isfinite(out).all()
    assert encoder.batch_size == 2


def test_wrong_feature_size_is_reported():
    """A model whose output length differs from dim raises a clear error."""
    encoder = Encoder(id="x", dim=7, model=MeanColour(), preprocess=Preprocess(size=8), device="cpu")
    with pytest.raises(RuntimeError, match="produced 4-d features; expected 7"):
        encoder.embed([Image.new("L", (8, 8))])


def test_device_and_batch_defaults():
    """device=None picks CPU here; the CPU batch size is the documented default."""
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None) == expected and resolve_device("cpu") == "cpu"
    assert _encoder().batch_size == CPU_BATCH_SIZE
    with pytest.raises(ValueError, match="batch_size=0"):
        _encoder(batch_size=0)


def test_cuda_without_a_gpu_is_a_clear_error():
    """Asking for CUDA where none is visible raises EncoderLoadError (or works with a GPU)."""
    from backend.exceptions import EncoderLoadError

    if torch.cuda.is_available():
        assert resolve_device("cuda") == "cuda"
    else:
        with pytest.raises(EncoderLoadError, match="no CUDA GPU is visible"):
            resolve_device("cuda:0")


def test_l2_normalise_keeps_zero_rows():
    """Zero rows stay zero instead of becoming NaN."""
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_concurrent_embeds_are_serialised_and_correct(tiny_encoder_spec, chest_xray_png_bytes):
    """Several threads embedding with one encoder get the same answer as one thread."""
    encoder = load_encoder(tiny_encoder_spec, device="cpu")
    expected = encoder.embed_bytes([chest_xray_png_bytes])
    results = []

    def work():
        results.append(encoder.embed_bytes([chest_xray_png_bytes]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_lazy_encoder_loads_once_on_first_use(tiny_encoder_spec):
    """LazyEncoder loads nothing until get(), then returns the same encoder every time."""
    lazy = LazyEncoder(tiny_encoder_spec, device="cpu")
    assert not lazy.loaded
    got = []
    threads = [threading.Thread(target=lambda: got.append(lazy.get())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lazy.loaded and len({id(e) for e in got}) == 1


def test_bf16_precision_on_cpu_is_close_to_fp32(tiny_encoder_spec, chest_xray_png_bytes):
    """precision='bf16' autocasts on the CPU and stays within cosine 0.99 of fp32."""
    fp32 = load_encoder(tiny_encoder_spec, device="cpu")
    bf16 = load_encoder(tiny_encoder_spec, device="cpu", precision="bf16")
    assert fp32.amp_dtype is None and bf16.amp_dtype == torch.bfloat16
    a, b = fp32.embed_bytes([chest_xray_png_bytes]), bf16.embed_bytes([chest_xray_png_bytes])
    assert float(a[0] @ b[0]) > 0.99 and not np.array_equal(a, b)


def test_unknown_precision_is_refused():
    """An unknown precision raises ValueError listing the choices."""
    with pytest.raises(ValueError, match="precision='fp8'"):
        _encoder(precision="fp8")


def _jpeg(value: int, size=(40, 30), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, value, value)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_gpu_batch_logic_runs_with_torchvision_decode_on_cpu():
    """The nvJPEG batch step (JPEGs via torchvision decode_jpeg, PNGs via CPU threads, errors
    reported) gives the PIL path's pixels; here decode_jpeg runs on the CPU, as no GPU is lent."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = _encoder(batch_size=8)
    datas = [
        _jpeg(40),
        _png(200),
        b"\xff\xd8\xff broken",
        _jpeg(120, mode="RGB"),
        _jpeg(90, size=(5000, 5000)),
    ]
    names = ["a.jpg", "b.png", "c.jpg", "d.jpg", "huge.jpg"]
    encoder.max_pixels = 1_000_000
    errors = []
    with ThreadPoolExecutor(2) as pool:
        good, pixels = encoder._gpu_decode_batch(datas, names, list(range(5)), pool, lambda i, e: errors.append(i))
    assert good == [0, 1, 3] and sorted(errors) == [2, 4]
    from backend.images import decode_image

    expected = encoder.preprocess.batch([decode_image(datas[i]) for i in good])
    assert np.abs(pixels.numpy() - expected).max() < 0.05


def test_gpu_batch_that_runs_out_of_device_memory_is_decoded_on_the_cpu():
    """A stand-in for nvJPEG running out of GPU memory (no GPU here: a decoder that accepts the
    JPEGs and raises torch.cuda.OutOfMemoryError): the batch is decoded on CPU threads, same pixels."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from backend.encoders.device_decode import JpegDecoder
    from backend.images import decode_image

    class OutOfMemory(JpegDecoder):
        def __call__(self, datas):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    encoder = _encoder(batch_size=8)
    encoder._jpeg_decoder = OutOfMemory("cpu")
    datas = [_jpeg(40), _png(200), _jpeg(120, mode="RGB")]
    with ThreadPoolExecutor(2) as pool:
        good, pixels = encoder._gpu_decode_batch(datas, ["a.jpg", "b.png", "d.jpg"], [0, 1, 2], pool, None)
    assert good == [0, 1, 2]
    expected = encoder.preprocess.batch([decode_image(data) for data in datas])
    assert np.abs(pixels.numpy() - expected).max() < 0.05
