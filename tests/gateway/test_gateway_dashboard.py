"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): live routes
and backend health, a non-zero req/s after traffic, and an edit made in the page applied
and written to the YAML file. Screenshots are kept in the test's tmp directory."""

from __future__ import annotations

import http.client
import shutil
import threading
import time

import pytest

from support import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
if not shutil.which("chromium"):
    pytest.skip("Debian's chromium is not installed (scripts/install-deps.sh)", allow_module_level=True)

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"
TOKEN = "dashboard-token-0123456789"

CONF = """\
# Dashboard test gateway. This comment must stay in the file after an edit in the page.
listeners:
  - {name: web, address: "127.0.0.1:{port}"}
admin: {address: "127.0.0.1:{admin}", token: "%s"}
clusters:
  blue:
    backends: [{address: "{blue}"}]
    health_check: {type: tcp, interval: 0.5}
  green:
    backends: [{address: "{green}"}, {address: "127.0.0.1:{closed}"}]
    health_check: {type: tcp, interval: 0.5}
routes:
  - {name: main, match: {path: {prefix: /}}, proxy: {cluster: blue}}
""" % TOKEN


def traffic(port: int, seconds: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.request("GET", "/")
        conn.getresponse().read()
    conn.close()


def test_dashboard_shows_live_state_and_applies_an_edit(gateway_run, tmp_path):
    admin = free_port()
    gw = gateway_run(CONF, admin=admin, closed=free_port())
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"http://127.0.0.1:{admin}/")
            page.wait_for_selector("#auth:not([hidden])")
            page.fill("#token", TOKEN)
            page.click("#auth button")

            page.wait_for_selector("#routes tbody tr td:text-is('main')")
            clusters = page.locator("#clusters")
            clusters.get_by_text("healthy").first.wait_for()
            page.wait_for_function("document.querySelector('#clusters').textContent.includes('down')")
            text = clusters.inner_text()
            assert "blue" in text and "green" in text and "healthy" in text and "down" in text

            load = threading.Thread(target=traffic, args=(gw.port, 4.0))
            load.start()
            page.wait_for_function(
                "[...document.querySelectorAll('#routes tbody tr')].some(r => r.cells[3].textContent === 'main'"
                " && parseFloat(r.cells[5].textContent) > 0)", timeout=8000)
            page.screenshot(path=str(tmp_path / "dashboard-live.png"), full_page=True)
            load.join()

            edited = gw.conf_path.read_text().replace("proxy: {cluster: blue}", "proxy: {cluster: green}")
            page.fill("#editor", edited.replace("cluster: green}", "cluster: gren}"))
            page.wait_for_selector("#validation.invalid")
            assert "routes[0].proxy.cluster: unknown cluster 'gren'" in page.inner_text("#validation")
            page.fill("#editor", edited)
            page.wait_for_selector("#validation.valid")
            assert "green" in page.inner_text("#routes-diff")
            page.screenshot(path=str(tmp_path / "dashboard-edit.png"), full_page=True)
            page.click("#apply")
            page.wait_for_function("document.querySelector('#apply-result').textContent.includes('version 2')")
        finally:
            browser.close()
    text = gw.conf_path.read_text()
    assert text == edited and text.startswith("# Dashboard test gateway.")
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().read() in (GREEN,)
    conn.close()
