"""The page in a real browser: headless Chromium (Debian's package, driven by Playwright) uploads a photo,
waits for the triplet table, hovers a row and checks that its two boxes, two nodes and edge light up.

The browser is the system's (`/usr/bin/chromium`, or `$EGTR_CHROMIUM`); nothing is downloaded. Without it
the test fails, saying how to install it (CI installs it). Every request the page makes is checked to go
to the test server: the page works offline. A screenshot goes to `$EGTR_TEST_ARTIFACTS` (default
`test-artifacts/`).
"""

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.inference.conftest import write_rgb

from .conftest import LiveServer, client_for

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    candidates = [os.environ.get("EGTR_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    found = next((path for path in candidates if path and Path(path).is_file()), None)
    if found is None:
        pytest.fail(
            "no Chromium for the browser test: install Debian's package (apt-get install -y chromium) "
            "or point $EGTR_CHROMIUM at a Chromium binary"
        )
    return found


def artifacts() -> Path:
    folder = Path(os.environ.get("EGTR_TEST_ARTIFACTS", "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_outside_requests(page, server, elsewhere: list) -> None:
    """Append to `elsewhere` every URL the page requests from anything but the test server."""
    page.on(
        "request",
        lambda request: (
            urlparse(request.url).netloc != f"127.0.0.1:{server.port}"
            and not request.url.startswith(("data:", "blob:"))
            and elsewhere.append(request.url)
        ),
    )


@pytest.fixture(scope="module")
def server(predictor):
    with LiveServer(client_for(predictor).app) as live:
        yield live


@pytest.mark.slow
def test_upload_table_hover_highlight_and_download(server, tmp_path):
    from playwright.sync_api import sync_playwright

    photo = write_rgb(tmp_path / "street.png", 96, 72, seed=4)
    elsewhere = []  # requests to anything but the test server
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium(),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1200, "height": 900},
            accept_downloads=True,
        )
        try:
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            record_outside_requests(page, server, elsewhere)
            page.goto(f"{server.url}/")
            page.wait_for_function("document.querySelector('#model').textContent.includes('small-random')")

            page.set_input_files("#file", str(photo))
            page.wait_for_selector("#triplets tbody tr")
            rows = page.locator("#triplets tbody tr")
            assert rows.count() == 10  # the page's default top-k

            second = rows.nth(1)
            second.hover()
            rank, subject, object_ = (
                second.get_attribute(f"data-{key}") for key in ("rank", "subject", "object")
            )
            lit = page.eval_on_selector_all(
                ".highlight",
                "nodes => nodes.map(n => [n.tagName.toLowerCase(), n.getAttribute('class'),"
                " n.tagName === 'TR' ? n.dataset.rank : n.dataset.object ?? n.dataset.rank])",
            )
            assert sorted(lit) == sorted(
                [
                    ["g", "box highlight", subject],
                    ["g", "box highlight", object_],
                    ["g", "node highlight", subject],
                    ["g", "node highlight", object_],
                    ["g", "edge highlight", rank],
                    ["tr", "highlight", rank],
                ]
            )
            assert page.evaluate("document.body.classList.contains('focus')")
            artifact = artifacts() / "serve-page.png"
            page.screenshot(path=str(artifact), full_page=True)
            assert artifact.stat().st_size > 10_000

            second.click()  # pinned: the highlight stays when the pointer leaves
            page.mouse.move(5, 5)
            assert page.locator("tr.pinned").get_attribute("data-rank") == rank
            assert page.locator(".box.highlight").count() == 2

            page.fill("#top-k", "3")
            assert rows.count() == 3
            page.fill("#min-score", "100")  # only the best triplet reaches the best score
            page.dispatch_event("#min-score", "input")
            assert rows.count() == 1

            with page.expect_download() as download:
                page.click("#download")
            saved = json.loads(Path(download.value.path()).read_text())
            assert download.value.suggested_filename == "street.json"
            assert saved["image"] == "street.png"  # the page uploads the file with its name
            assert len(saved["triplets"]) == 100 and saved["width"] == 96
            assert errors == []
        finally:
            context.close()
    assert elsewhere == []


@pytest.mark.slow
def test_the_api_docs_render_offline(server, tmp_path):
    """Swagger UI comes from the server: the page renders the operations, and the browser asks nothing of
    any other host."""
    from playwright.sync_api import sync_playwright

    elsewhere = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium(), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            page = context.new_page()
            record_outside_requests(page, server, elsewhere)
            page.goto(f"{server.url}/docs")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert "scene-graph" in page.content()
        finally:
            context.close()
    assert elsewhere == []
