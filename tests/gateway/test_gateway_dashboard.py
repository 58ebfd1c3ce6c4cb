"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): live routes
and backend health, a non-zero req/s after traffic (its figures are the built-in
metrics', the same a Prometheus scrape shows), and an edit made in the page applied and
written to the YAML file. Screenshots are kept in the test's tmp directory."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time

import pytest

from support import free_port, scrape, total

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
metrics: {address: "127.0.0.1:{metrics}"}
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


def test_dashboard_shows_live_state_and_applies_an_edit(gateway_run, lab, tmp_path):
    admin, metrics = free_port(), free_port()
    gw = gateway_run(CONF, admin=admin, metrics=metrics, closed=free_port())
    blue = "%s:%d" % lab.address("blue")
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
            # The backend's rate comes from the built-in metrics' upstream label.
            page.wait_for_function(
                f"parseFloat(document.querySelector('#clusters [data-address=\"{blue}\"] .rate')"
                ".textContent) > 0", timeout=8000)
            page.screenshot(path=str(tmp_path / "dashboard-live.png"), full_page=True)
            load.join()
            # Once the traffic stopped, the page's request count is the scrape's.
            scraped = int(total(scrape(metrics), "propylon_requests_total", service="main"))
            assert scraped > 0
            page.wait_for_function(
                "[...document.querySelectorAll('#routes tbody tr')].some(r => r.cells[3].textContent === 'main'"
                f" && r.cells[9].textContent === '{scraped}')", timeout=5000)

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


NO_METRICS = """\
listeners:
  - {name: web, address: "127.0.0.1:{port}"}
admin: {address: "127.0.0.1:{admin}"}
clusters:
  gone: {backends: [{address: "127.0.0.1:{closed}"}]}
routes:
  - {name: broken, match: {path: {prefix: /}}, proxy: {cluster: gone}}
"""


def test_without_metrics_the_figures_are_absent_and_errors_still_listed(gateway_run):
    admin = free_port()
    gw = gateway_run(NO_METRICS, admin=admin, closed=free_port())
    assert gw.request()[0] == 503  # refused, and no other backend to move on to
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/api/stats")
    stats = json.loads(conn.getresponse().read())
    conn.close()
    # No second source of figures: the dashboard shows "–" and says metrics are off.
    assert stats["source"] is None and stats["routes"] == {} and stats["backends"] == {}
    [error] = stats["errors"]
    assert error["route"] == "broken" and error["status"] == 503, error
    assert "no ready backend in cluster gone" in error["cause"], error
