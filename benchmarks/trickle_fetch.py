"""How long a trickling image server holds a download and a job (issue 13, item 5), loopback only.

A local server answers every image request with headers and then one body byte per second,
for ever (never idle for the 30-s read timeout). Measured at the same time, with the default
limits:

- one download of such an image (``SafeFetcher.get``);
- one ``embed_tasks`` job (a refit's first step) of 8 such images and 8 good ``data:`` images.

Each is reported with its time and outcome, or as still running when ``--max-seconds`` is up.

    python benchmarks/trickle_fetch.py
    PYTHONPATH=/path/to/older/checkout python benchmarks/trickle_fetch.py   # another version
"""

from __future__ import annotations

import argparse
import http.server
import pathlib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


class _Trickle(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n")
        try:
            while not self.server.stopping.wait(1.0):
                self.wfile.write(b"\x89")
                self.wfile.flush()
        except OSError:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-seconds", type=float, default=200.0, help="stop waiting after this long (at most 600)")
    args = parser.parse_args()

    import backend
    from backend.fetch import SafeFetcher
    from backend.settings import Settings
    from backend.store import SQLiteStore
    from backend.training import Trainer
    from conftest import _save_tiny_clip, data_uri, xray_png

    print(f"backend: {pathlib.Path(backend.__file__).parent}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    server.stopping = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    results: dict[str, str] = {}

    def timed(name, work):
        started = time.monotonic()
        try:
            outcome = work()
        except Exception as exc:  # the outcome to report, whatever it is
            outcome = f"{type(exc).__name__}: {exc}"
        results[name] = f"{time.monotonic() - started:.1f} s: {str(outcome)[:200]}"

    with tempfile.TemporaryDirectory() as folder:
        work = pathlib.Path(folder)
        encoder = str(_save_tiny_clip(work / "tiny-clip"))
        settings = Settings(model_dir=work, encoder=encoder, device="cpu", allowed_image_hosts=("127.0.0.1",))
        store = SQLiteStore(work / "store.sqlite3")
        trainer = Trainer(settings, store)
        _ = trainer.encoder  # loaded before the clocks start
        store.put_project(1, {"label_config": "<View/>"})
        refs = {i: f"{base}/{i}.png" for i in range(8)}
        refs.update({8 + i: data_uri(xray_png(i, i % 2 == 0)) for i in range(8)})
        store.put_tasks(1, refs)

        def job():
            errors: dict[int, str] = {}
            vectors = trainer.embed_tasks(1, list(refs), errors)
            return f"{len(vectors)} embedded, {len(errors)} image errors ({next(iter(errors.values()), '')})"

        threads = [
            threading.Thread(
                target=timed,
                args=("one download", lambda: len(SafeFetcher(allowed_hosts="127.0.0.1").get(f"{base}/x.png"))),
                daemon=True,
            ),
            threading.Thread(target=timed, args=("one job of 8 trickling + 8 good images", job), daemon=True),
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, min(args.max_seconds, 600.0) - (time.monotonic() - started)))
        for name in ("one download", "one job of 8 trickling + 8 good images"):
            print(f"{name}: {results.get(name, f'still running after {time.monotonic() - started:.0f} s')}")
        server.stopping.set()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
