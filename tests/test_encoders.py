"""Tests of backend.encoders.load_encoder: every spec form, loaded from real on-disk formats."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from backend.encoders import PRESETS, check_encoder, load_encoder
from backend.exceptions import EncoderLoadError

torch = pytest.importorskip("torch")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 255, (60, 40, 3), dtype=np.uint8)),
        Image.fromarray(np.full((40, 40), 128, dtype=np.uint8)),
    ]


def _check_embeddings(encoder, images=None) -> np.ndarray:
    out = encoder.embed(images or _images())
    assert out.shape == (len(images or _images()), encoder.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    return out


# --- transformers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, dim",
    [
        pytest.param("clip", 16, id="clip"),
        pytest.param("siglip", 32, id="siglip"),
        pytest.param("dinov2", 32, id="dinov2"),
    ],
)
def test_hf_folder_loads_and_embeds(tiny_hf_encoder_dirs, kind, dim):
    """A save_pretrained folder of CLIP, SigLIP or DINOv2 loads as `hf:<folder>` and embeds."""
    encoder = load_encoder(f"hf:{tiny_hf_encoder_dirs[kind]}", device="cpu")
    assert encoder.dim == dim and encoder.id.startswith(f"hf-{kind}@")
    _check_embeddings(encoder)


def test_plain_folder_is_an_hf_spec(tiny_hf_encoder_dirs):
    """A plain folder path loads like `hf:<folder>`, with the same id."""
    folder = tiny_hf_encoder_dirs["clip"]
    assert load_encoder(str(folder)).id == load_encoder(f"hf:{folder}").id


def test_clip_embedding_is_the_projected_image_feature(tiny_hf_encoder_dirs):
    """The CLIP embedding equals CLIPModel.get_image_features on the same pixels, normalised."""
    from transformers import CLIPModel

    folder = tiny_hf_encoder_dirs["clip"]
    encoder = load_encoder(str(folder), device="cpu")
    pixels = encoder.preprocess.batch(_images())
    full = CLIPModel.from_pretrained(folder).eval()
    with torch.inference_mode():
        reference = full.get_image_features(pixel_values=torch.from_numpy(pixels))
    reference = getattr(reference, "pooler_output", reference).numpy()
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    np.testing.assert_allclose(encoder.embed(_images()), reference, atol=1e-5)


def test_siglip_embedding_is_the_pooled_image_feature(tiny_hf_encoder_dirs):
    """The SigLIP embedding equals SiglipModel.get_image_features (MAP head), normalised."""
    from transformers import SiglipModel

    folder = tiny_hf_encoder_dirs["siglip"]
    encoder = load_encoder(str(folder), device="cpu")
    pixels = torch.from_numpy(encoder.preprocess.batch(_images()))
    with torch.inference_mode():
        reference = SiglipModel.from_pretrained(folder).eval().get_image_features(pixel_values=pixels)
    reference = getattr(reference, "pooler_output", reference).numpy()
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    np.testing.assert_allclose(encoder.embed(_images()), reference, atol=1e-5)


def test_dinov2_embedding_is_the_cls_token(tiny_hf_encoder_dirs):
    """The DINOv2 embedding is the normalised CLS token after the final layer norm."""
    from transformers import Dinov2Model

    folder = tiny_hf_encoder_dirs["dinov2"]
    encoder = load_encoder(str(folder), device="cpu")
    pixels = torch.from_numpy(encoder.preprocess.batch(_images()))
    with torch.inference_mode():
        hidden = Dinov2Model.from_pretrained(folder).eval()(pixel_values=pixels).last_hidden_state
    cls = hidden[:, 0].numpy()
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    np.testing.assert_allclose(encoder.embed(_images()), cls, atol=1e-5)


def _normalised(array) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "kind, model_type, dim",
    [
        pytest.param("clip_with_projection", "clip_vision_model", 16, id="CLIPVisionModelWithProjection"),
        pytest.param("clip", "clip_vision_model", 32, id="CLIPVisionModel"),
        pytest.param("siglip", "siglip_vision_model", 32, id="SiglipVisionModel"),
        pytest.param("dinov2_classifier", "dinov2", 32, id="Dinov2ForImageClassification"),
        pytest.param("dinov2_with_registers", "dinov2_with_registers", 32, id="Dinov2WithRegistersModel"),
    ],
)
def test_hf_vision_folder_loads_and_embeds(tiny_hf_vision_dirs, kind, model_type, dim):
    """A vision model saved alone with save_pretrained loads as a plain folder and embeds."""
    encoder = load_encoder(str(tiny_hf_vision_dirs[kind]), device="cpu")
    assert encoder.dim == dim and encoder.id.startswith(f"hf-{model_type}@")
    _check_embeddings(encoder)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_vision_tower_alone_embeds_as_the_full_model(tiny_hf_encoder_dirs, tiny_hf_vision_dirs, kind):
    """A CLIP (with projection) or SigLIP vision tower saved alone embeds as its full model."""
    alone = "clip_with_projection" if kind == "clip" else kind
    full = load_encoder(str(tiny_hf_encoder_dirs[kind]), device="cpu")
    tower = load_encoder(str(tiny_hf_vision_dirs[alone]), device="cpu")
    assert tower.dim == full.dim and tower.id != full.id
    np.testing.assert_allclose(tower.embed(_images()), full.embed(_images()), atol=1e-6)


def test_clip_vision_model_without_projection_embeds_the_pooled_output(tiny_hf_encoder_dirs, tiny_hf_vision_dirs):
    """CLIPVisionModel (no projection saved) embeds the full model's pooled CLS token."""
    from transformers import CLIPModel

    encoder = load_encoder(str(tiny_hf_vision_dirs["clip"]), device="cpu")
    pixels = torch.from_numpy(encoder.preprocess.batch(_images()))
    with torch.inference_mode():
        pooled = CLIPModel.from_pretrained(tiny_hf_encoder_dirs["clip"]).eval().vision_model(pixel_values=pixels)
    np.testing.assert_allclose(encoder.embed(_images()), _normalised(pooled.pooler_output), atol=1e-5)


def test_dinov2_classifier_folder_embeds_as_its_backbone(tiny_hf_encoder_dirs, tiny_hf_vision_dirs):
    """A Dinov2ForImageClassification folder embeds with its DINOv2 backbone (the head unused)."""
    backbone = load_encoder(str(tiny_hf_encoder_dirs["dinov2"]), device="cpu")
    classifier = load_encoder(str(tiny_hf_vision_dirs["dinov2_classifier"]), device="cpu")
    np.testing.assert_allclose(classifier.embed(_images()), backbone.embed(_images()), atol=1e-6)


def test_vision_folder_with_a_pytorch_model_bin_loads(tiny_hf_vision_dirs, tmp_path):
    """A vision folder whose weights are an older pytorch_model.bin embeds as its safetensors twin."""
    from safetensors.torch import load_file

    folder = tmp_path / "bin"
    shutil.copytree(tiny_hf_vision_dirs["clip_with_projection"], folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    encoder = load_encoder(str(folder), device="cpu")
    twin = load_encoder(str(tiny_hf_vision_dirs["clip_with_projection"]), device="cpu")
    assert encoder.dim == 16
    np.testing.assert_allclose(encoder.embed(_images()), twin.embed(_images()), atol=1e-6)


def test_vision_folder_missing_a_tower_tensor_is_refused(tiny_hf_vision_dirs, tmp_path):
    """A vision tensor missing from the weights is an error naming it, never a random init."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(tiny_hf_vision_dirs["siglip"], folder)
    tensors = load_file(folder / "model.safetensors")
    del tensors["vision_model.post_layernorm.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EncoderLoadError, match="lack 1 tensor.*post_layernorm.weight"):
        load_encoder(str(folder))


def test_vision_folder_whose_config_does_not_fit_its_weights_is_refused(tiny_hf_vision_dirs, tmp_path):
    """A config.json projection_dim unlike the saved projection's is refused with both shapes."""
    import json

    folder = tmp_path / "other-dim"
    shutil.copytree(tiny_hf_vision_dirs["clip_with_projection"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "projection_dim": 24}))
    with pytest.raises(EncoderLoadError, match=r"visual_projection.weight \(weights \[16, 32\], config \[24, 32\]\)"):
        load_encoder(str(folder))


def test_siglip_tower_without_its_pooling_head_is_refused(tiny_hf_vision_dirs, tmp_path):
    """A SiglipVisionModel saved with vision_use_head false has no image embedding: refused."""
    import json

    folder = tmp_path / "headless"
    shutil.copytree(tiny_hf_vision_dirs["siglip"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vision_use_head": False}))
    with pytest.raises(EncoderLoadError, match="vision_use_head false"):
        load_encoder(str(folder))


def test_hf_repo_loads_offline_from_the_hub_cache(tiny_hf_encoder_dirs, make_hf_cache):
    """A preset resolves to its repo and loads offline from a hub cache snapshot."""
    repo = PRESETS["xrayclip"].spec.removeprefix("hf:")
    cache = make_hf_cache(repo, tiny_hf_encoder_dirs["clip"])
    encoder = load_encoder("xrayclip", device="cpu", cache_dir=str(cache), offline=True)
    folder_encoder = load_encoder(str(tiny_hf_encoder_dirs["clip"]))
    assert encoder.id == folder_encoder.id  # content-based: same weights, same cache key
    np.testing.assert_allclose(encoder.embed(_images()), folder_encoder.embed(_images()), atol=1e-6)


def test_missing_hub_weights_offline_explain_how_to_provide_them(tmp_path):
    """Offline with an empty cache, the error names spec, repo, cache folder and the fixes."""
    with pytest.raises(EncoderLoadError) as info:
        load_encoder("rad-dino", cache_dir=str(tmp_path), offline=True)
    message = str(info.value)
    for fragment in (
        "'rad-dino'",
        "microsoft/rad-dino",
        str(tmp_path),
        "offline",
        "hf download",
        "folder",
    ):
        assert fragment in message


def test_hf_offline_env_variable_is_honoured(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 makes a missing repo fail as offline, without touching the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderLoadError, match="offline mode is on"):
        load_encoder("hf:some-org/not-cached", cache_dir=str(tmp_path))


def test_folder_without_weights_is_refused(tiny_hf_encoder_dirs, tmp_path):
    """A folder with config.json but no weight file fails naming the files it expected."""
    folder = tmp_path / "noweights"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(tiny_hf_encoder_dirs["clip"] / name, folder / name)
    with pytest.raises(EncoderLoadError, match="no weights in .*model.safetensors"):
        load_encoder(str(folder))


def test_folder_without_preprocessor_config_is_refused(tiny_hf_encoder_dirs, tmp_path):
    """Preprocessing must come from the checkpoint: no preprocessor_config.json is an error."""
    folder = tmp_path / "noproc"
    shutil.copytree(tiny_hf_encoder_dirs["clip"], folder)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(EncoderLoadError, match="preprocessor_config.json is missing"):
        load_encoder(str(folder))


def test_unsupported_model_type_is_refused(tmp_path):
    """A transformers folder of another model type names the supported ones."""
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(EncoderLoadError, match="'bert'.*clip"):
        load_encoder(f"hf:{tmp_path}")


def test_missing_folder_is_refused(tmp_path):
    """hf:<path that does not exist> names the folder."""
    with pytest.raises(EncoderLoadError, match="does not exist"):
        load_encoder(f"hf:{tmp_path}/nope")


def test_changed_weights_change_the_id(tiny_hf_encoder_dirs, tmp_path):
    """The id follows the weights' content: other weights in a copied folder, another id."""
    folder = tmp_path / "copy"
    shutil.copytree(tiny_hf_encoder_dirs["clip"], folder)
    original = load_encoder(str(folder)).id
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(folder)
    with torch.no_grad():
        model.visual_projection.weight.mul_(2)
    model.save_pretrained(folder)
    assert load_encoder(str(folder)).id != original


# --- open_clip ------------------------------------------------------------------------------


def test_open_clip_local_dir_loads(tiny_open_clip_dir):
    """open_clip:local-dir:<folder> loads the image tower with the folder's preprocessing."""
    encoder = load_encoder(f"open_clip:local-dir:{tiny_open_clip_dir}", device="cpu")
    assert encoder.dim == 16 and encoder.id.startswith("open_clip-custom@")
    assert encoder.preprocess.mean == (0.5, 0.5, 0.5)
    _check_embeddings(encoder)


def test_plain_open_clip_folder_is_recognised(tiny_open_clip_dir):
    """A plain folder holding open_clip_config.json loads as an open_clip model."""
    assert load_encoder(str(tiny_open_clip_dir)).id == load_encoder(f"open_clip:local-dir:{tiny_open_clip_dir}").id


def test_open_clip_embedding_matches_encode_image(tiny_open_clip_dir):
    """The embedding equals open_clip's own normalised encode_image on the same pixels."""
    import open_clip

    encoder = load_encoder(f"open_clip:local-dir:{tiny_open_clip_dir}", device="cpu")
    model = open_clip.create_model(f"local-dir:{tiny_open_clip_dir}").eval()
    pixels = torch.from_numpy(encoder.preprocess.batch(_images()))
    with torch.inference_mode():
        reference = model.encode_image(pixels, normalize=True).numpy()
    np.testing.assert_allclose(encoder.embed(_images()), reference, atol=1e-5)


def test_open_clip_hf_hub_loads_offline(tiny_open_clip_dir, make_hf_cache):
    """open_clip:hf-hub:<repo> loads offline from a hub cache snapshot (BiomedCLIP's layout)."""
    cache = make_hf_cache("someone/tiny-biomedclip", tiny_open_clip_dir)
    encoder = load_encoder("open_clip:hf-hub:someone/tiny-biomedclip", cache_dir=str(cache), offline=True)
    assert encoder.dim == 16
    _check_embeddings(encoder)


def test_open_clip_repo_given_as_hf_points_to_open_clip(tiny_open_clip_dir, make_hf_cache):
    """hf:<repo> on an open_clip-only repo says to use open_clip:hf-hub:<repo>."""
    cache = make_hf_cache("someone/oc-only", tiny_open_clip_dir)
    with pytest.raises(EncoderLoadError, match="use the spec open_clip:hf-hub:someone/oc-only"):
        load_encoder("hf:someone/oc-only", cache_dir=str(cache), offline=True)


def test_open_clip_hf_hub_missing_offline(tmp_path):
    """A missing open_clip hub repo offline raises EncoderLoadError with the repo and cache."""
    with pytest.raises(EncoderLoadError, match="microsoft/BiomedCLIP.*not in the Hugging Face cache"):
        load_encoder("open_clip:hf-hub:microsoft/BiomedCLIP", cache_dir=str(tmp_path), offline=True)


def test_open_clip_name_with_checkpoint_file(tiny_open_clip_dir, tmp_path):
    """open_clip:<registered name>:<checkpoint file> loads that file into that architecture."""
    import json

    import open_clip

    config = json.loads((tiny_open_clip_dir / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "labelcast-tiny-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "labelcast-tiny-test.json")
    checkpoint = tiny_open_clip_dir / "open_clip_pytorch_model.bin"
    encoder = load_encoder(f"open_clip:labelcast-tiny-test:{checkpoint}")
    local = load_encoder(f"open_clip:local-dir:{tiny_open_clip_dir}")
    # Same weights; the named model uses the default (OpenAI) mean/std, the folder its own.
    assert encoder.dim == 16 and encoder.preprocess.mean != local.preprocess.mean
    _check_embeddings(encoder)


def _register_open_clip_config(name: str, model_cfg: dict, folder) -> str:
    """Add ``model_cfg`` to open_clip's registry as ``name`` (a built-in model name)."""
    import json

    import open_clip

    (folder / f"{name}.json").write_text(json.dumps(model_cfg))
    open_clip.add_model_config(folder / f"{name}.json")
    return name


def _tiny_open_clip_model(tiny_open_clip_dir):
    import open_clip

    return open_clip.create_model(f"local-dir:{tiny_open_clip_dir}").eval()


def _save_state(state: dict, path) -> None:
    from safetensors.torch import save_file

    if str(path).endswith(".safetensors"):
        save_file({key: value.detach().clone().contiguous() for key, value in state.items()}, path)
    else:
        torch.save(state, path)


@pytest.mark.parametrize(
    "prefix, filename",
    [
        pytest.param("visual.", "visual.bin", id="visual-keys-torch"),
        pytest.param("visual.", "visual.safetensors", id="visual-keys-safetensors"),
        pytest.param("", "tower.pt", id="tower-own-keys-torch"),
        pytest.param("", "tower.safetensors", id="tower-own-keys-safetensors"),
    ],
)
def test_open_clip_visual_only_checkpoint_embeds_as_the_full_model(tiny_open_clip_dir, tmp_path, prefix, filename):
    """An image-tower-only checkpoint (visual.* or own keys) embeds as the whole checkpoint."""
    import json

    config = json.loads((tiny_open_clip_dir / "open_clip_config.json").read_text())["model_cfg"]
    name = _register_open_clip_config("labelcast-tiny-visual", config, tmp_path)
    visual = _tiny_open_clip_model(tiny_open_clip_dir).visual.state_dict()
    _save_state({prefix + key: value for key, value in visual.items()}, tmp_path / filename)
    tower = load_encoder(f"open_clip:{name}:{tmp_path / filename}", device="cpu")
    whole = load_encoder(f"open_clip:{name}:{tiny_open_clip_dir / 'open_clip_pytorch_model.bin'}", device="cpu")
    assert tower.dim == whole.dim == 16 and tower.id != whole.id
    np.testing.assert_allclose(tower.embed(_images()), whole.embed(_images()), atol=1e-6)


def test_open_clip_folder_with_visual_only_weights_loads(tiny_open_clip_dir, tmp_path):
    """An open_clip folder whose weights hold only visual.* keys embeds as the whole folder."""
    folder = tmp_path / "visual-only"
    folder.mkdir()
    shutil.copy(tiny_open_clip_dir / "open_clip_config.json", folder)
    visual = _tiny_open_clip_model(tiny_open_clip_dir).visual.state_dict()
    _save_state({"visual." + key: value for key, value in visual.items()}, folder / "open_clip_model.safetensors")
    encoder = load_encoder(str(folder), device="cpu")
    whole = load_encoder(str(tiny_open_clip_dir), device="cpu")
    assert encoder.preprocess == whole.preprocess
    np.testing.assert_allclose(encoder.embed(_images()), whole.embed(_images()), atol=1e-6)


def test_open_clip_visual_only_checkpoint_of_another_model_is_refused(tiny_open_clip_dir, tmp_path):
    """An image tower of another width, or one missing a tensor, is refused naming the keys."""
    import json

    import open_clip

    config = json.loads((tiny_open_clip_dir / "open_clip_config.json").read_text())["model_cfg"]
    name = _register_open_clip_config("labelcast-tiny-visual-refused", config, tmp_path)
    wider = {**config, "vision_cfg": {**config["vision_cfg"], "width": 48}}
    other = _register_open_clip_config("labelcast-tiny-visual-wider", wider, tmp_path)
    _save_state(open_clip.create_model(other).visual.state_dict(), tmp_path / "wider.pt")
    with pytest.raises(EncoderLoadError, match="image tower in .*wider.pt does not fit labelcast-tiny-visual-refused"):
        load_encoder(f"open_clip:{name}:{tmp_path / 'wider.pt'}")
    partial = _tiny_open_clip_model(tiny_open_clip_dir).visual.state_dict()
    del partial["ln_post.weight"]
    _save_state({"visual." + key: value for key, value in partial.items()}, tmp_path / "partial.pt")
    with pytest.raises(EncoderLoadError, match=r"1 missing keys, e.g. \['ln_post.weight'\]"):
        load_encoder(f"open_clip:{name}:{tmp_path / 'partial.pt'}")


@pytest.mark.parametrize(
    "spec, fragment",
    [
        pytest.param("open_clip:No-Such-Model:x", "has no model 'No-Such-Model'", id="unknown-model"),
        pytest.param("open_clip:ViT-B-16", "names no weights", id="no-weights"),
        pytest.param("open_clip:ViT-B-16:no_such_tag", "neither a file nor a pretrained tag", id="bad-tag"),
    ],
)
def test_open_clip_bad_specs(spec, fragment):
    """Unknown open_clip models, missing weights and unknown tags raise clear errors."""
    with pytest.raises(EncoderLoadError, match=fragment):
        load_encoder(spec, offline=True)


def test_open_clip_tag_missing_offline(tmp_path):
    """A real pretrained tag that is not cached, offline, names the hub repo to download."""
    with pytest.raises(EncoderLoadError, match="laion/CLIP-ViT-B-16-laion2B-s34B-b88K"):
        load_encoder("open_clip:ViT-B-16:laion2b_s34b_b88k", cache_dir=str(tmp_path), offline=True)


# --- start-up check (check_encoder) ----------------------------------------------------------


@pytest.mark.parametrize(
    "kind, fragment",
    [
        pytest.param("hf-clip", "transformers clip in ", id="hf-clip"),
        pytest.param("hf-clip-vision", "transformers clip_vision_model in ", id="hf-clip-vision"),
        pytest.param("hf-siglip-vision", "transformers siglip_vision_model in ", id="hf-siglip-vision"),
        pytest.param("open-clip-folder", "(the whole model)", id="open-clip-folder"),
        pytest.param("open-clip-visual", "(the image tower alone)", id="open-clip-visual"),
        pytest.param("torchvision", "torchvision mobilenet_v2, ", id="torchvision"),
    ],
)
def test_check_encoder_resolves_every_format(
    tiny_hf_encoder_dirs, tiny_hf_vision_dirs, tiny_open_clip_dir, mobilenet_v2_weights_file, tmp_path, kind, fragment
):
    """check_encoder accepts every format load_encoder loads and says what it found."""
    import json

    config = json.loads((tiny_open_clip_dir / "open_clip_config.json").read_text())["model_cfg"]
    name = _register_open_clip_config("labelcast-tiny-check", config, tmp_path)
    visual = tmp_path / "visual.pt"
    torch.save(
        {"visual." + k: v for k, v in _tiny_open_clip_model(tiny_open_clip_dir).visual.state_dict().items()}, visual
    )
    specs = {
        "hf-clip": str(tiny_hf_encoder_dirs["clip"]),
        "hf-clip-vision": str(tiny_hf_vision_dirs["clip"]),
        "hf-siglip-vision": f"hf:{tiny_hf_vision_dirs['siglip']}",
        "open-clip-folder": str(tiny_open_clip_dir),
        "open-clip-visual": f"open_clip:{name}:{visual}",
        "torchvision": f"torchvision:mobilenet_v2:{mobilenet_v2_weights_file}",
    }
    assert fragment in check_encoder(specs[kind], offline=True)


def test_check_encoder_reads_no_tensor_of_a_safetensors_folder(tiny_hf_vision_dirs):
    """Checking a safetensors folder imports neither torch nor transformers (header only)."""
    code = (
        "import sys; from backend.encoders import check_encoder; "
        f"print(check_encoder({str(tiny_hf_vision_dirs['clip_with_projection'])!r}, offline=True)); "
        "print(sorted(m for m in ('torch', 'transformers', 'safetensors') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "clip_vision_model" in result.stdout and result.stdout.strip().endswith("[]"), result.stdout


def test_truncated_weights_are_refused_by_the_check_and_the_load(tiny_hf_vision_dirs, tmp_path):
    """A safetensors file cut short fails the check and the load alike, naming the file."""
    folder = tmp_path / "cut"
    shutil.copytree(tiny_hf_vision_dirs["siglip"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    for call in (check_encoder, load_encoder):
        with pytest.raises(
            EncoderLoadError, match=r"model.safetensors is unreadable .*the file has .*copy or download it again"
        ):
            call(str(folder))


def test_missing_shard_is_refused_by_the_check(tiny_hf_encoder_dirs, tmp_path):
    """A sharded checkpoint whose index lists a shard that is not there fails the check."""
    from transformers import Dinov2Model

    folder = tmp_path / "sharded"
    Dinov2Model.from_pretrained(tiny_hf_encoder_dirs["dinov2"]).save_pretrained(folder, max_shard_size="20KB")
    shutil.copy(tiny_hf_encoder_dirs["dinov2"] / "preprocessor_config.json", folder)
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 1 and "transformers dinov2" in check_encoder(str(folder))
    shards[-1].unlink()
    with pytest.raises(EncoderLoadError, match=f"{shards[-1].name} is missing"):
        check_encoder(str(folder))


def test_weights_of_another_model_are_refused_by_the_check(tiny_hf_encoder_dirs, tiny_hf_vision_dirs, tmp_path):
    """config.json of a CLIP vision tower over DINOv2 weights fails the check, saying so."""
    folder = tmp_path / "mixed"
    shutil.copytree(tiny_hf_vision_dirs["clip"], folder)
    shutil.copy(tiny_hf_encoder_dirs["dinov2"] / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(EncoderLoadError, match="hold no clip_vision_model vision tower"):
        check_encoder(str(folder))


def test_check_encoder_missing_hub_weights_offline_says_how_to_provide_them(tmp_path):
    """The default preset, not cached and offline, fails the check with load_encoder's message."""
    with pytest.raises(EncoderLoadError) as checked:
        check_encoder("xrayclip", cache_dir=str(tmp_path), offline=True)
    with pytest.raises(EncoderLoadError) as loaded:
        load_encoder("xrayclip", cache_dir=str(tmp_path), offline=True)
    assert str(checked.value) == str(loaded.value) and "hf download StanfordAIMI/" in str(checked.value)


# --- torchvision ----------------------------------------------------------------------------


def test_torchvision_real_mobilenet_weights_file(mobilenet_v2_weights_file, chest_xray_png_bytes):
    """Real ImageNet MobileNetV2 weights load from a file, with their release's preprocessing,
    and give a stable embedding: a radiograph is closer to itself resized than to noise."""
    encoder = load_encoder(f"torchvision:mobilenet_v2:{mobilenet_v2_weights_file}", device="cpu")
    assert encoder.dim == 1280 and encoder.id.startswith("torchvision-mobilenet_v2@")
    assert (encoder.preprocess.size, encoder.preprocess.crop) == (256, 224)
    xray = Image.open(io.BytesIO(chest_xray_png_bytes))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224), dtype=np.uint8))
    out = _check_embeddings(encoder, [xray, xray.resize((250, 260)), noise])
    assert out[0] @ out[1] > 0.95
    assert out[0] @ out[1] > out[0] @ out[2] + 0.1


def test_torchvision_release_loads_from_the_checkpoint_cache(mobilenet_v2_weights_file, tmp_path):
    """torchvision:<arch> finds the release file in the checkpoint folder without downloading."""
    shutil.copy(mobilenet_v2_weights_file, tmp_path / mobilenet_v2_weights_file.name)
    encoder = load_encoder("torchvision:mobilenet_v2:IMAGENET1K_V1", cache_dir=str(tmp_path), offline=True)
    same = load_encoder(f"torchvision:mobilenet_v2:{mobilenet_v2_weights_file}")
    assert encoder.id == same.id


def test_resnet50_preset_missing_offline_gives_the_download_command(tmp_path):
    """The resnet50 preset offline without its file names the path and a curl command."""
    with pytest.raises(EncoderLoadError) as info:
        load_encoder("resnet50", cache_dir=str(tmp_path), offline=True)
    message = str(info.value)
    assert "resnet50-11ad3fa6.pth" in message and str(tmp_path) in message and "curl -L" in message


def test_torchvision_state_dict_of_another_architecture_is_refused(mobilenet_v2_weights_file):
    """MobileNetV2 weights given to resnet18 fail naming missing and unexpected keys."""
    with pytest.raises(EncoderLoadError, match="does not fit resnet18.*missing keys"):
        load_encoder(f"torchvision:resnet18:{mobilenet_v2_weights_file}")


def test_torchvision_tiny_state_dict_roundtrip(tmp_path):
    """A saved resnet18 state dict (wrapped as {'state_dict': ...}, DataParallel prefixes) loads."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    encoder = load_encoder(f"torchvision:resnet18:{tmp_path / 'r18.pth'}", batch_size=2)
    assert encoder.dim == 512
    _check_embeddings(encoder)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        pytest.param("torchvision:no_such_net", "no classification model 'no_such_net'", id="arch"),
        pytest.param("torchvision:resnet50:IMAGENET9K", "neither a file nor a weights name", id="enum"),
        pytest.param("torchvision:resnet50:/nonexistent/w.pth", "not found at /nonexistent/w.pth", id="file"),
    ],
)
def test_torchvision_bad_specs(spec, fragment):
    """Unknown architectures, weight names and files raise clear errors."""
    with pytest.raises(EncoderLoadError, match=fragment):
        load_encoder(spec, offline=True)


# --- laziness -------------------------------------------------------------------------------


def test_importing_the_packages_loads_nothing_heavy():
    """Importing backend.encoders and backend.images imports neither torch nor transformers."""
    code = (
        "import sys, backend.encoders, backend.images, backend.pipeline;"
        "print(sorted(m for m in ('torch', 'transformers', 'open_clip', 'pydicom', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tiny_encoder_spec_fixture_loads_fast(tiny_encoder_spec):
    """The shared tiny_encoder_spec fixture loads through load_encoder in well under a second."""
    import time

    load_encoder(tiny_encoder_spec)  # first call pays for importing transformers
    start = time.perf_counter()
    encoder = load_encoder(tiny_encoder_spec)
    assert time.perf_counter() - start < 0.5
    _check_embeddings(encoder)
