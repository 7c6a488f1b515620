"""Tests of `labelcast embed` and `labelcast encoders` (backend.commands.embed/encoders)."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.commands import embed as embed_command


def _png(value: int, size=(24, 20)) -> bytes:
    rng = np.random.default_rng(value)
    pixels = np.clip(rng.normal(value, 30, size[::-1]), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def labeled_folder(tmp_path):
    """A folder with normal/ and tb/ sub-folders of small PNGs, plus one corrupt file."""
    root = tmp_path / "images"
    for i in range(6):
        label = "tb" if i % 2 else "normal"
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i}.png").write_bytes(_png(40 + 30 * i))
    (root / "normal" / "broken.png").write_bytes(b"not a png")
    return root


def test_folder_with_folder_labels(labeled_folder, tmp_path, tiny_encoder_spec, capsys):
    """A labeled folder gives X (unit rows), y from --positive, ids, and skips the corrupt file."""
    out = tmp_path / "emb.npz"
    rc = main(
        [
            "embed",
            str(labeled_folder),
            "--encoder",
            tiny_encoder_spec,
            "--out",
            str(out),
            "--folder-labels",
            "--positive",
            "tb",
            "--quiet",
        ]
    )
    assert rc == 0
    data = np.load(out)
    assert data["X"].shape == (6, 16) and data["X"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data["X"], axis=1), 1, atol=1e-5)
    assert list(data["ids"]) == sorted(data["ids"]) and "normal/0.png" in data["ids"]
    assert [int(v) for v in data["y"]] == [int(i.startswith("tb/")) for i in data["ids"]]
    assert list(data["failed"]) == ["normal/broken.png"]
    assert str(data["encoder_id"]).startswith("hf-clip@")
    assert "skipped" in capsys.readouterr().err


def test_folder_of_dicom_files_without_suffix(tmp_path, tiny_encoder_spec):
    """DICOM files without a suffix (as PACS exports them) are found and decoded."""
    from pydicom.data import get_testdata_file

    root = tmp_path / "pacs"
    root.mkdir()
    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm"):
        (root / name.split(".")[0]).write_bytes(open(get_testdata_file(name), "rb").read())
    (root / "README").write_text("not an image")
    out = tmp_path / "d.npz"
    assert main(["embed", str(root), "--encoder", tiny_encoder_spec, "--out", str(out), "--quiet"]) == 0
    data = np.load(out)
    assert list(data["ids"]) == ["RG1_J2KR", "RG1_UNCR"] and "y" not in data.files
    np.testing.assert_allclose(data["X"][0], data["X"][1], atol=1e-5)  # lossless: same pixels


def test_csv_with_numeric_labels_and_relative_paths(tmp_path, tiny_encoder_spec, chest_xray_png_bytes):
    """A CSV of relative paths with 0/1 labels gives y directly, rows in CSV order."""
    (tmp_path / "a.png").write_bytes(_png(10))
    (tmp_path / "chest.png").write_bytes(chest_xray_png_bytes)
    (tmp_path / "list.csv").write_text("image,label\nchest.png,1\na.png,0\n")
    out = tmp_path / "csv.npz"
    assert (
        main(
            [
                "embed",
                str(tmp_path / "list.csv"),
                "--encoder",
                tiny_encoder_spec,
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    data = np.load(out)
    assert list(data["paths"]) == ["chest.png", "a.png"] and list(data["y"]) == [1, 0]


def test_non_binary_labels_without_positive_fail_before_loading(tmp_path, capsys):
    """String labels without --positive stop at once with a message naming them."""
    (tmp_path / "list.csv").write_text("path,label\nx.png,Normal\ny.png,TB\n")
    rc = main(
        [
            "embed",
            str(tmp_path / "list.csv"),
            "--encoder",
            "hf:/nonexistent/never-loaded",
            "--out",
            str(tmp_path / "o.npz"),
        ]
    )
    assert rc == 2
    assert "['Normal', 'TB'] are not 0/1; pass --positive" in capsys.readouterr().err


class _Server(http.server.BaseHTTPRequestHandler):
    images: dict[str, bytes] = {}
    seen_auth: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        self.seen_auth.append(self.headers.get("Authorization"))
        body = self.images.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server():
    """A local HTTP server standing in for Label Studio's /data/upload/ file serving."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Server.images = {"/data/upload/1/u.png": _png(200)}
    _Server.seen_auth = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_label_studio_export(tmp_path, tiny_encoder_spec, image_server):
    """A Label Studio export: data: URI, local-files, upload URL (token sent), labels from the
    latest non-cancelled annotation; an unlabeled task means no y."""
    (tmp_path / "root" / "xr").mkdir(parents=True)
    (tmp_path / "root" / "xr" / "l.png").write_bytes(_png(90))
    data_uri = "data:image/png;base64," + base64.b64encode(_png(30)).decode()

    def task(tid, image, choice=None, cancelled=False):
        result = [
            {
                "type": "choices",
                "from_name": "f",
                "to_name": "image",
                "value": {"choices": [choice]},
            }
        ]
        annotations = (
            [] if choice is None else [{"result": result, "was_cancelled": cancelled, "updated_at": "2026-01-02"}]
        )
        return {"id": tid, "data": {"image": image}, "annotations": annotations}

    tasks = [
        task(1, data_uri, "TB"),
        task(2, "/data/local-files/?d=xr/l.png", "Normal"),
        task(3, "/data/upload/1/u.png", "TB"),
        task(4, "/data/upload/1/missing.png", "Normal"),
    ]
    tasks[1]["annotations"].append(
        {
            "result": [{"type": "choices", "value": {"choices": ["TB"]}}],
            "was_cancelled": True,
            "updated_at": "2026-05-05",
        }
    )
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    out = tmp_path / "ls.npz"
    rc = main(
        [
            "embed",
            str(tmp_path / "export.json"),
            "--encoder",
            tiny_encoder_spec,
            "--out",
            str(out),
            "--positive",
            "TB",
            "--local-files-root",
            str(tmp_path / "root"),
            "--label-studio-url",
            image_server,
            "--api-key",
            "a" * 40,
            "--quiet",
        ]
    )
    assert rc == 0
    data = np.load(out)
    assert list(data["ids"]) == ["1", "2", "3"] and list(data["failed"]) == ["/data/upload/1/missing.png"]
    assert list(data["labels"]) == ["TB", "Normal", "TB"] and list(data["y"]) == [1, 0, 1]
    assert _Server.seen_auth and set(_Server.seen_auth) == {"Token " + "a" * 40}

    tasks.append(task(5, data_uri))  # no annotation: labels incomplete → no y
    (tmp_path / "export.json").write_text(json.dumps(tasks[:1] + tasks[4:]))
    assert (
        main(
            [
                "embed",
                str(tmp_path / "export.json"),
                "--encoder",
                tiny_encoder_spec,
                "--out",
                str(out),
                "--positive",
                "TB",
                "--quiet",
            ]
        )
        == 0
    )
    assert "y" not in np.load(out).files


def test_interrupted_run_resumes_from_the_cache(labeled_folder, tmp_path, tiny_encoder_spec, monkeypatch):
    """After an interruption, a rerun embeds only the images the first run did not finish."""
    import sqlite3

    from backend.encoders.encoder import Encoder

    monkeypatch.setattr(embed_command, "CHUNK_IMAGES", 2)
    embedded: list[int] = []
    original = Encoder.embed_pixels

    def counting(self, pixels):
        embedded.append(len(pixels))
        if len(embedded) == 2 and interrupt:
            raise KeyboardInterrupt
        return original(self, pixels)

    monkeypatch.setattr(Encoder, "embed_pixels", counting)
    out = tmp_path / "r.npz"
    args = [
        "embed",
        str(labeled_folder),
        "--encoder",
        tiny_encoder_spec,
        "--out",
        str(out),
        "--quiet",
    ]
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert not out.exists()
    with sqlite3.connect(out.with_suffix(".cache.sqlite")) as connection:
        assert connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 2
    embedded.clear()
    interrupt = False
    assert main(args) == 0
    assert sum(embedded) == 6 - 2  # 6 good images (the broken one never reaches the encoder), 2 cached
    assert np.load(out)["X"].shape == (6, 16)


def test_a_cache_file_of_the_older_layout_is_refused_up_front(labeled_folder, tmp_path, capsys):
    """A --cache written by the older labelcast embed (its own table layout) is a clean error."""
    import sqlite3

    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as connection:
        connection.execute("CREATE TABLE embeddings (encoder_id TEXT, sha256 TEXT, dim INTEGER, vector BLOB)")
    rc = main(["embed", str(labeled_folder), "--out", str(tmp_path / "o.npz"), "--cache", str(old), "--quiet"])
    assert rc == 2
    assert "older labelcast embed" in capsys.readouterr().err


def test_output_feeds_simulate(tmp_path, tiny_encoder_spec):
    """`labelcast simulate --data` reads the X and y that `labelcast embed` writes."""
    pytest.importorskip("backend.commands.simulate")
    root = tmp_path / "imgs"
    for i in range(40):
        label = "tb" if i % 2 else "normal"
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:02d}.png").write_bytes(_png(60 + 120 * (i % 2) + i))
    out = tmp_path / "sim.npz"
    assert (
        main(
            [
                "embed",
                str(root),
                "--encoder",
                tiny_encoder_spec,
                "--out",
                str(out),
                "--folder-labels",
                "--positive",
                "tb",
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["simulate", "--data", str(out), "--checkpoints", "20", "--target", "0.9"]) == 0


@pytest.mark.parametrize(
    "argv_tail, fragment",
    [
        pytest.param(["--out", "x.csv"], "must end in .npz", id="out-suffix"),
        pytest.param(["--out", "/nonexistent-dir/x.npz"], "does not exist", id="out-dir"),
    ],
)
def test_bad_output_paths(tmp_path, capsys, argv_tail, fragment):
    """Bad --out values give a clean error and exit status 2."""
    assert main(["embed", str(tmp_path), *argv_tail]) == 2
    assert fragment in capsys.readouterr().err


def test_missing_source_and_empty_folder(tmp_path, capsys):
    """A missing SOURCE and a folder without images are clean errors."""
    assert main(["embed", str(tmp_path / "nope"), "--out", str(tmp_path / "o.npz")]) == 2
    assert main(["embed", str(tmp_path), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "neither a folder nor a file" in err and "no images found" in err


def test_missing_weights_is_a_clean_cli_error(labeled_folder, tmp_path, capsys, monkeypatch):
    """Missing preset weights offline end the command with the how-to message, no traceback."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    rc = main(
        [
            "embed",
            str(labeled_folder),
            "--encoder",
            "rad-dino",
            "--out",
            str(tmp_path / "o.npz"),
            "--offline",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "hf download microsoft/rad-dino" in err and "Traceback" not in err


def test_labels_to_y_cases():
    """labels_to_y: numeric/boolean words map to 0/1, --positive picks the class, gaps give None."""
    from backend.exceptions import CommandError

    assert list(embed_command.labels_to_y(["1", "0", "true", "no"], None)) == [1, 0, 1, 0]
    assert list(embed_command.labels_to_y(["TB", "N", "TB"], "TB")) == [1, 0, 1]
    assert embed_command.labels_to_y(["1", None], None) is None
    assert embed_command.labels_to_y([None, None], None) is None
    with pytest.raises(CommandError, match="'X' is not among"):
        embed_command.labels_to_y(["a", "b"], "X")


def test_encoders_command_lists_presets(capsys, tmp_path):
    """`labelcast encoders` lists every preset with its spec and whether weights are cached."""
    assert main(["encoders", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("xrayclip*", "xraysiglip", "rad-dino-maira-2", "resnet50", "open_clip:hf-hub:"):
        assert name in out
    assert "missing" in out
