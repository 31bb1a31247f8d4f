"""The web viewer in a real browser: Playwright driving Debian's Chromium against a real server.

Skips, saying why, when Playwright or ``/usr/bin/chromium`` is missing (the
browser is the system package; Playwright's own browser download is never used).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.conftest import Server, request, service_config

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def test_upload_and_browse_a_study(browser, tmp_path: Path, phantom_zip: bytes) -> None:
    server = Server(service_config(tmp_path / "data"))
    upload_file = tmp_path / "phantom.zip"
    upload_file.write_bytes(phantom_zip)
    page = browser.new_page(viewport={"width": 1280, "height": 820})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(server.url + "/")
        page.set_input_files("#file", str(upload_file))
        page.fill("input[name=height_cm]", "172")
        page.fill("input[name=weight_kg]", "70")
        page.click("#upload-button")
        page.wait_for_selector("#study-body", state="visible", timeout=600_000)
        page.wait_for_function(
            "() => ['image-img', 'overlay-img'].every(id => { const i = document.getElementById(id);"
            " return i.src.startsWith('blob:') && i.complete && i.naturalWidth === 128; })",
            timeout=60_000,
        )
        rows = page.locator("#studies tbody tr")
        assert rows.count() == 1 and rows.first.get_attribute("data-status") == "done"

        page.locator("#slice-slider").fill("3")
        page.wait_for_selector("#stack[data-slice='3']", timeout=30_000)
        assert page.locator("#slice-value").inner_text() == "4 / 4"
        page.locator("#slice-slider").fill("1")
        page.wait_for_selector("#stack[data-slice='1']", timeout=30_000)
        page.locator(".overlay-toggle[value=rv]").uncheck()
        page.wait_for_function("() => document.getElementById('overlay-img').src.startsWith('blob:')")

        job_id = rows.first.get_attribute("data-id")
        measurements = request(f"{server.url}/studies/{job_id}/files/measurements.json").json()
        shown = page.locator("#m-lv_ef_percent").inner_text()
        assert float(shown) == pytest.approx(measurements["lv_ef_percent"], abs=0.051)
        qc = request(f"{server.url}/studies/{job_id}/files/qc.json").json()
        assert page.locator("#qc-verdict").inner_text() == qc["verdict"]
        assert page.locator("#qc-reasons li").count() >= 1
        assert page.locator("#diagnosis").inner_text().strip()
        links = page.locator("#study-links a")
        files = request(f"{server.url}/studies/{job_id}").json()["files"]
        assert ("report.html" in files) == (page.locator("#link-report-html").count() == 1)
        assert links.count() >= 2
        page.locator(".overlay-toggle[value=rv]").check()
        page.wait_for_timeout(500)
        assert page.locator("#frame-value").inner_text().endswith("(ED)")
        shot = tmp_path / "viewer.png"  # docs/images/viewer_example.png is this screenshot
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert not errors, errors
    finally:
        page.close()
        server.stop()
