"""The forecast seen in a real browser: headless Chromium on Label Studio's labeling interface.

Needs ``LABEL_STUDIO_BIN`` (a label-studio 1.23 executable; ``.ci/run`` sets it), Debian's
``chromium`` at ``/usr/bin/chromium`` (or ``CHROMIUM_BIN``) and the ``playwright`` Python
package; Playwright's own browser downloads are never used.

Regenerate the README screenshot with::

    LABELCAST_SCREENSHOT=docs/labeling-interface.png LABEL_STUDIO_BIN=... pytest tests/test_browser.py

It also opens the report page the forecast message links to and saves ``report-page.png``
next to the screenshot. Without ``LABELCAST_SCREENSHOT`` both go to pytest's tmp folder.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import threading

import pytest
import requests

from conftest import (
    LABEL_STUDIO_PASSWORD,
    LABEL_STUDIO_USER,
    ONE_FINDING,
    PROJECT_ROOT,
    data_uri,
    free_port,
    wait_until,
)

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

N_TASKS = 30
N_LABELED = 24
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1100}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium (never a Playwright download)."""
    path = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.isfile(path):
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    return path


@pytest.fixture
def backend_for(tmp_path, tiny_encoder_spec, sqlite_store, label_studio):
    """The app (tiny encoder, talking to the test Label Studio) on a free loopback port."""
    from werkzeug.serving import make_server

    from backend.app import EXTENSION, create_app
    from backend.jobs import ThreadJobs
    from backend.settings import Settings

    port = free_port()
    settings = Settings(
        model_dir=tmp_path / "model",
        encoder=tiny_encoder_spec,
        min_labels=10,
        target_auc=0.85,
        label_studio_url=label_studio["url"],
        label_studio_api_key=label_studio["token"],
        public_url=f"http://127.0.0.1:{port}",  # as `labelcast serve --host 127.0.0.1` sets it
    )
    jobs = ThreadJobs(settings, sqlite_store, isolate=False)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs})
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    app.extensions[EXTENSION].jobs.close()


def subtle_xray_png(seed: int, positive: bool, size: int = 256) -> bytes:
    """A synthetic chest-X-ray-like PNG whose positives carry a faint, jittered lower-left
    opacity: hard enough that 24 labels give a forecast of more labels, not "target reached"."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    lungs = 0.55 - 0.35 * (
        np.exp(-((xx - 0.3) ** 2 + (yy - 0.5) ** 2) / 0.03) + np.exp(-((xx - 0.7) ** 2 + (yy - 0.5) ** 2) / 0.03)
    )
    image = lungs + 0.08 * rng.standard_normal((size, size))
    cx, cy = 0.3 + 0.05 * rng.standard_normal(), 0.75 + 0.05 * rng.standard_normal()
    if positive:
        image += 0.05 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.01)
    buffer = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_forecast_is_visible_in_the_labeling_interface(chromium_path, label_studio, backend_for, tmp_path):
    """After a refit on 24 labels, an unlabeled task shows the forecast sentence and number."""
    from playwright.sync_api import sync_playwright

    base, backend = label_studio["url"], backend_for
    session = requests.Session()
    session.headers["Authorization"] = f"Token {label_studio['token']}"

    def api(method, path, **kwargs):
        response = session.request(method, base + path, timeout=60, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response.json() if response.content else None

    config = ONE_FINDING
    pid = api("POST", "/api/projects", json={"title": "Pleural effusion (LabelCast)", "label_config": config})["id"]

    def choice(positive):
        return [
            {
                "from_name": "finding",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": ["Effusion" if positive else "No effusion"]},
            }
        ]

    api(
        "POST",
        f"/api/projects/{pid}/import",
        json=[
            {
                "data": {"image": data_uri(subtle_xray_png(2000 + i, i % 2 == 0))},
                **({"annotations": [{"result": choice(i % 2 == 0)}]} if i < N_LABELED else {}),
            }
            for i in range(N_TASKS)
        ],
    )
    # Connecting reads the imported labels, refits, embeds every task, moves the model version.
    api("POST", "/api/ml", json={"project": pid, "url": backend, "title": "LabelCast"})
    forecast = wait_until(
        lambda: (
            (r := requests.get(f"{backend}/forecast", params={"project": pid}, timeout=10)).ok
            and r.json()["n_labels"] == N_LABELED
            and r.json()
        ),
        120,
        f"a forecast on {N_LABELED} labels",
    )
    version = forecast["version"]
    wait_until(lambda: api("GET", f"/api/projects/{pid}")["model_version"] == version, 60, "the model version")
    tasks = api("GET", f"/api/tasks?project={pid}&page_size=100&fields=all")["tasks"]
    task = next(t for t in sorted(tasks, key=lambda t: t["id"]) if not t["annotations"])
    api(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        json={"project": str(pid), "selectedItems": {"all": False, "included": [task["id"]]}},
    )
    prediction = wait_until(
        lambda: [p for p in api("GET", f"/api/predictions?task={task['id']}") if p["model_version"] == version],
        60,
        "the task's prediction",
    )[0]
    by_type = {r["type"]: r["value"] for r in prediction["result"]}
    message = by_type["textarea"]["text"][0]
    assert "number" in by_type, f"no labels-needed number in {prediction['result']}"
    number = by_type["number"]["number"]

    screenshot = pathlib.Path(os.environ.get("LABELCAST_SCREENSHOT") or tmp_path / "labeling-interface.png")
    if not screenshot.is_absolute():
        screenshot = PROJECT_ROOT / screenshot
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(30_000)
            page.goto(f"{base}/user/login/")
            page.fill("input[name=email]", LABEL_STUDIO_USER)
            page.fill("input[name=password]", LABEL_STUDIO_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/user/login" not in url)
            page.goto(f"{base}/projects/{pid}/data?task={task['id']}")
            try:
                forecast_text = page.get_by_text(message, exact=True).first
                forecast_text.wait_for(state="attached", timeout=60_000)
                labels_needed = page.locator("input[type=number]").first
                _scroll_into_view(page, labels_needed)
                forecast_text.wait_for(state="visible")
                labels_needed.wait_for(state="visible")
                assert labels_needed.input_value() == str(number)
                # maxSubmissions="1": the forecast's text only, no empty input with an "Add" button.
                assert page.get_by_role("button", name="Add").count() == 0
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"))
                raise
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))

            # The link in the message: the report page with its learning-curve image.
            assert f"Details: {backend}/report?project={pid}" in message
            page.goto(f"{backend}/report?project={pid}")
            page.get_by_text("History").first.wait_for(state="visible")
            plot = page.locator("img").first
            assert plot.evaluate("img => img.complete && img.naturalWidth > 0")
            page.screenshot(path=str(screenshot.with_name("report-page.png")), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def _scroll_into_view(page, locator, tries=5):
    """Scroll to the element; Label Studio re-renders the panel while the prediction loads, so
    the element found first can be replaced mid-scroll ('not attached'): find it again."""
    from playwright.sync_api import Error

    for attempt in range(tries):
        try:
            locator.scroll_into_view_if_needed()
            return
        except Error as exc:
            if "not attached" not in str(exc) or attempt == tries - 1:
                raise
            page.wait_for_timeout(500)
