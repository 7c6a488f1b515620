"""How long a trickling image server holds a download and a job (issue 13, item 5), loopback only.

A local server answers every image request with headers and then one body byte per second,
for ever (never idle for the 30-s read timeout). Measured at the same time, with the default
limits:

- one download of such an image (``SafeFetcher.get``);
- one ``embed_tasks`` job (a refit's first step) of 8 such images and 8 good ``data:`` images;
- two projects behind the app, as ``labelcast serve`` runs them (the embedded worker with its
  training process, the tiny encoder): project 1 gets 12 good labels and 3 whose images
  trickle; once its refit is downloading those, project 2 gets 20 labels of other images (a
  forecast past "collecting", its images embedded, not cached). Reported: how
  long project 2's forecast took, whether project 1's refit was still downloading then, and
  when project 1's refit ended.

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
        self.server.requests += 1
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
    parser.add_argument(
        "--only-projects", action="store_true", help="only the two-project measurement (not the download and job)"
    )
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
    server.requests = 0
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

        names = ["one download", "one job of 8 trickling + 8 good images"]
        threads = [
            threading.Thread(
                target=timed,
                args=(names[0], lambda: len(SafeFetcher(allowed_hosts="127.0.0.1").get(f"{base}/x.png"))),
                daemon=True,
            ),
            threading.Thread(target=timed, args=(names[1], job), daemon=True),
        ]
        if args.only_projects:
            names, threads = [], []
        started = time.monotonic()
        for thread in threads:
            thread.start()
        _two_projects(work, encoder, base, server, min(args.max_seconds, 600.0))
        for thread in threads:
            thread.join(max(0.0, min(args.max_seconds, 600.0) - (time.monotonic() - started)))
        for name in names:
            print(f"{name}: {results.get(name, f'still running after {time.monotonic() - started:.0f} s')}")
        server.stopping.set()
        server.shutdown()
    return 0


def _two_projects(work: pathlib.Path, encoder: str, base: str, server, max_seconds: float) -> None:
    """Project 2's refit while project 1's downloads trickle (see the module docstring)."""
    from backend.app import create_app
    from backend.jobs import ThreadJobs
    from backend.settings import Settings
    from backend.store import SQLiteStore
    from conftest import ONE_FINDING, annotation_event

    settings = Settings(
        model_dir=work / "two", encoder=encoder, device="cpu", min_labels=10, allowed_image_hosts=("127.0.0.1",)
    )
    store = SQLiteStore(work / "two.sqlite3")
    jobs = ThreadJobs(settings, store, isolate=True)  # as labelcast serve runs it
    web = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": store, "LABELCAST_JOBS": jobs}).test_client()
    started = time.monotonic()

    def until(condition, limit: float) -> bool:
        while not condition():
            if time.monotonic() - started > limit:
                return False
            time.sleep(0.05)
        return True

    try:
        for pid in (1, 2):
            web.post("/setup", json={"project": pid, "schema": ONE_FINDING})
        jobs.wait_idle(120)  # the training process is up
        for i in range(12):
            web.post("/webhook", json=annotation_event(1, i, 100 + i))
        before = server.requests
        for i in range(3):
            web.post("/webhook", json=annotation_event(1, 90 + i, 190 + i, image=f"{base}/p1-{i}.png"))
        if not until(lambda: server.requests > before, 60):
            print("two projects: project 1's refit never downloaded its trickling images")
            return
        trickling = time.monotonic()
        for i in range(20):
            web.post("/webhook", json=annotation_event(2, 40 + i, 200 + i))
        if not until(lambda: (store.get_forecast(2) or {}).get("n_labels") == 20, max_seconds):
            print(f"two projects: project 2's forecast still not there after {time.monotonic() - trickling:.0f} s")
            return
        second = time.monotonic() - trickling
        running = jobs.status()["running"] or "nothing"
        first = store.get_forecast(1) or {}
        still = (
            "still downloading" if "refit:1" in running and "90" not in (first.get("image_errors") or {}) else "done"
        )
        status = (store.get_forecast(2) or {}).get("findings", {}).get("Effusion", {}).get("status")
        print(
            f"two projects: project 2's forecast (20 labels, status {status}) {second:.1f} s after project 1's "
            f"refit began downloading images at 1 byte/s; project 1's refit then: {still} (running: {running})"
        )
        if until(lambda: "90" in ((store.get_forecast(1) or {}).get("image_errors") or {}), max_seconds):
            record = store.get_forecast(1)
            print(
                f"two projects: project 1's refit ended {time.monotonic() - trickling:.1f} s after it began "
                f"downloading: {record['n_labels']} labels used, {record['n_image_errors']} image errors"
            )
        else:
            print(f"two projects: project 1's refit still running after {time.monotonic() - trickling:.0f} s")
    finally:
        jobs.close()
        store.close()


if __name__ == "__main__":
    sys.exit(main())
