"""The dashboard in a real browser (headless Chromium driven by Playwright) against uvicorn and MariaDB:
the cards, the filtered call list and the CSV download equal the SQL on the tables. The server runs as
in production, with API keys required: the page asks for the key, refuses a wrong one, and sends the
right one with every data call (the CSV download included).

Needs Debian's ``chromium`` (``apt-get install chromium``; Playwright's own browser download is never
used). Without it the test skips with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from churn_pipeline.api.security import new_key
from churn_pipeline_tests.test_api_support import DAY1, DAY2, customers_json, free_port, prepared_database, sql

CHROMIUM = Path(os.environ.get("CHURN_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]
SCREENSHOT = Path(__file__).resolve().parents[1] / "test-output" / "dashboard.png"


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (CI is set: the browser test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Checked before anything slow starts."""
    _need(CHROMIUM.is_file(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need(False, "playwright is not installed (pip install -e '.[test]')")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium, server):  # after the server: the graph runs before Playwright's event loop exists
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(chromium, request, tmp_path_factory):
    """uvicorn in its own process on a free loopback port, over the graph's tables on MariaDB, requiring
    an API key made for this run (only its digest goes into the server's environment)."""
    db = prepared_database("mysql", request, tmp_path_factory)
    port = free_port()
    key, key_digest = new_key()
    env = {**os.environ, "CHURN_DB_URL": db.url, "CHURN_MODEL_DIR": str(db.settings.model_dir),
           "CHURN_DATA_DIR": str(db.settings.data_dir), "CHURN_API_KEYS": key_digest,
           "CHURN_API_REQUIRE_AUTH": "true"}
    env.pop("CHURN_API_CORS_ORIGINS", None)
    log = tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "churn_pipeline.api.app:app", "--host",
                                    "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                   env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield base, db, key
    finally:
        process.terminate()
        process.wait(timeout=20)


def _rows(page) -> list[str]:
    return page.locator("#call-list tbody tr").evaluate_all("rows => rows.map(r => r.dataset.customerId)")


def _wait_for_call_list(page) -> None:
    page.wait_for_selector("#call-list[data-state=ready]")


def test_dashboard_numbers_filters_and_csv_equal_the_sql(server, browser, tmp_path):
    base, db, key = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    problems, expect_401 = [], True

    def console(message) -> None:
        # Chromium logs every 4xx fetch; the 401s while no right key is entered are the expected ones.
        if message.type == "error" and not (expect_401 and "status of 401" in message.text):
            problems.append(message.text)

    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", console)
    page.goto(base + "/")
    page.wait_for_selector("body[data-loaded='key-needed']", timeout=15_000)
    assert page.locator("#key-form").is_visible() and page.locator("#card-active .value").inner_text() == "–"
    assert "needs an API key" in page.locator("#key-message").inner_text()
    page.fill("#key-input", "not-" + key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body[data-loaded='key-refused']")
    assert "The API key was refused: the API key is not valid" in page.locator("#key-message").inner_text()
    assert page.evaluate("sessionStorage.getItem('churn-api-key')") is None  # a refused key is not kept
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT.with_name("dashboard_key.png")))

    started = time.monotonic()
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector(f"body[data-loaded='{DAY2}']", timeout=15_000)
    _wait_for_call_list(page)
    load_seconds = time.monotonic() - started
    expect_401 = False
    assert page.locator("#key-form").is_hidden() and page.locator("#forget-key").is_visible()

    kpis = sql(db.url, "SELECT * FROM business_kpis WHERE snapshot_date = :d", d=DAY2)[0]
    scored = sql(db.url, "SELECT COUNT(*) AS n, SUM(expected_revenue_loss) AS risk, "
                         "SUM(CASE WHEN risk_tier = 'High' THEN 1 ELSE 0 END) AS high "
                         "FROM scored_customers WHERE snapshot_date = :d", d=DAY2)[0]
    model = sql(db.url, "SELECT roc_auc FROM model_runs WHERE model_version = :v", v=kpis["model_version"])[0]

    def card(name: str) -> str:
        return page.locator(f"#card-{name} .value").inner_text()

    assert card("active") == f"{scored['n']:,}" == f"{kpis['active_customers']:,}"
    assert card("risk") == f"${float(scored['risk']):,.2f}" == f"${kpis['revenue_at_risk']:,.2f}"
    assert card("high") == f"{int(scored['high']):,}" == f"{kpis['high_risk_customers']:,}"
    assert card("churners") == f"{round(kpis['predicted_churners']):,}"
    assert card("model") == kpis["model_version"]
    assert f"ROC-AUC {model['roc_auc']:.3f}" in page.locator("#card-model-note").inner_text()
    assert page.locator("#trend-chart circle.dot:not(.high)").count() == 2  # one point per snapshot date
    assert page.locator("#date-select option").all_inner_texts() == [DAY2, DAY1]
    segments = sql(db.url, "SELECT segment_value, revenue_at_risk FROM segment_kpis WHERE snapshot_date = :d AND "
                           "segment_type = 'contract' ORDER BY revenue_at_risk DESC", d=DAY2)
    shown = page.locator("#segments-table tbody tr td:first-child").all_inner_texts()
    assert shown == [s["segment_value"] for s in segments]
    page.click("#segments-table th[data-sort=segment_value]")  # sortable: by name, A to Z
    assert page.locator("#segments-table tbody tr td:first-child").all_inner_texts() == sorted(shown)

    first_page = _call_list(db.url, limit=50)
    assert _rows(page) == first_page
    assert page.locator("#call-list-status").inner_text() == f"Showing 1–50 of {scored['n']:,} customers"

    page.select_option("#tier-filter", "High")
    _wait_for_call_list(page)
    high = _call_list(db.url, "AND risk_tier = 'High'")
    assert _rows(page) == high[:50]
    assert set(page.locator("#call-list tbody .tier").all_inner_texts()) == {"High"}
    page.select_option("#segment-filter", "contract=Month-to-month")
    _wait_for_call_list(page)
    where = "AND risk_tier = 'High' AND contract = 'Month-to-month'"
    high_monthly = _call_list(db.url, where)
    assert _rows(page) == high_monthly[:50]
    assert f"of {len(high_monthly):,} customers" in page.locator("#call-list-status").inner_text()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    if len(high_monthly) > 50:
        page.click("#next-page")
        page.wait_for_function("document.querySelector('#call-list-status').textContent.startsWith('Showing 51')")
        _wait_for_call_list(page)
        assert _rows(page) == high_monthly[50:100]

    with page.expect_download() as download_info:
        page.click("#csv-download")
    path = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(path)
    assert path.name == f"call_list_{DAY2}_risk_tier-High_contract-Month-to-month.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = sql(db.url, f"SELECT customer_id, priority_rank, churn_probability, expected_revenue_loss, top_reasons "
                           f"FROM scored_customers WHERE snapshot_date = :d {where} ORDER BY priority_rank", d=DAY2)
    assert [r["customer_id"] for r in rows] == [e["customer_id"] for e in expected]
    assert [float(r["expected_revenue_loss"]) for r in rows] == [e["expected_revenue_loss"] for e in expected]
    assert [r["top_reasons"] for r in rows] == [e["top_reasons"] for e in expected]

    page.select_option("#date-select", DAY1)  # an older snapshot: every panel follows
    page.wait_for_selector(f"body[data-loaded='{DAY1}']")
    older = sql(db.url, "SELECT active_customers FROM business_kpis WHERE snapshot_date = :d", d=DAY1)[0]
    assert card("active") == f"{older['active_customers']:,}"

    page.reload()  # the key lives as long as the tab: no second prompt
    page.wait_for_selector(f"body[data-loaded='{DAY2}']", timeout=15_000)
    assert page.locator("#key-form").is_hidden()
    other_tab = context.new_page()  # sessionStorage is per tab: a new tab asks again
    other_tab.goto(base + "/")
    other_tab.wait_for_selector("body[data-loaded='key-needed']", timeout=15_000)
    other_tab.close()
    expect_401 = True
    page.click("#forget-key")
    page.wait_for_selector("body[data-loaded='key-needed']", timeout=15_000)
    context.close()
    assert not problems, problems
    assert load_seconds < 10, f"the dashboard took {load_seconds:.1f} s to load"


def test_the_real_server_refuses_without_a_key_and_limits_streamed_bodies(server):
    """Over HTTP to uvicorn: 401s with their challenge, the open health probe, and a chunked body (no
    Content-Length) refused with 413 once its bytes pass the limit."""
    base, _db, key = server
    customer = customers_json(1)[0]
    anonymous = httpx.post(f"{base}/predict", json=customer, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="churn-api"'
    assert "an API key is required" in anonymous.json()["detail"]
    for path in ("/kpis", "/segments", "/customers/at-risk", "/customers/at-risk.csv", "/model"):
        assert httpx.get(base + path, timeout=10).status_code == 401, path
    health = httpx.get(f"{base}/health", timeout=10)
    assert health.status_code == 200 and health.json()["model"] == {"loaded": True, "serving": None,
                                                                    "last_checked_at": None, "error": None}
    assert httpx.get(f"{base}/health", headers={"X-API-Key": key}, timeout=10).json()["model"]["serving"]
    assert httpx.get(f"{base}/", timeout=10).status_code == 200  # the page itself is public

    scored = httpx.post(f"{base}/predict", json=customer, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert scored.status_code == 200, scored.text

    def chunks():
        for _ in range(40):
            yield b" " * 8192  # 320 KiB in all, over /predict's 256 KiB

    with httpx.Client(timeout=10) as client:
        refused = client.post(f"{base}/predict", content=chunks(),
                              headers={"X-API-Key": key, "Content-Type": "application/json"})
        assert "content-length" not in refused.request.headers
        assert refused.status_code == 413 and "exceeds the limit of 262,144 bytes" in refused.json()["detail"]
        # the server is fine afterwards
        assert client.post(f"{base}/predict", json=customer, headers={"X-API-Key": key}).status_code == 200


def _call_list(url: str, where: str = "", limit: int = 1_000_000) -> list[str]:
    rows = sql(url, f"SELECT customer_id FROM scored_customers WHERE snapshot_date = :d {where} "
                    "ORDER BY priority_rank LIMIT :limit", d=DAY2, limit=limit)
    return [r["customer_id"] for r in rows]
