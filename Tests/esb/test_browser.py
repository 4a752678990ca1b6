"""What an administrator sees, in a real browser (headless Chromium through selenium): sign in, search a
vendor ticket id of a conversation created through the broker, read its page, watch the live feed, the
endpoint health and the parked messages. Screenshots of each page go to .build/screenshots/."""
import json
import os
import time
import uuid

import pytest

from admin_client import Secrets
from conftest import REPO, Switchboard, incident, jira, fresh_vhost
from test_admin import conversation_of, flow, parked_id
from admin_client import Admin
from fake_apis import FakeJira, wait as polled

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHOTS = os.path.join(REPO, ".build", "screenshots")
SECRETS = Secrets()



@pytest.fixture(scope="module")
def vhost():
    """This module's own vhost (its Switchboards leave timers due later; they must not reach other tests)."""
    yield from fresh_vhost("sb-test-browser-")

@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,1000",
                # The local CA is not in Chromium's store; TLS itself is tested with openssl (test_admin).
                "--ignore-certificate-errors"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    # The whole page, not only the window: as tall as its content.
    height = driver.execute_script("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight, 800)")
    # The window is larger than its viewport by the browser's own bars: add them, or the page's end is cut off.
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(1440, min(height + max(chrome, 0) + 20, 4000))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1440, 1000)


def test_an_administrator_finds_a_vendor_ticket_and_reads_its_life(vhost, esb, browser):
    sb = Switchboard(vhost, env=dict(SECRETS.env, SB_MAX_MESSAGE_BYTES="4096")).start()
    try:
        url = sb.admin_url()
        number, key = f"INC{uuid.uuid4().int % 10**7:07d}", f"VX-{uuid.uuid4().int % 10**5}"
        flow(esb, number, key)
        esb.publish("vendor-x", jira(key, number, status="Returned to customer", user="Vera Vendor"), message_id=f"{key}-back")
        esb.publish("customer-a", b'{"number": "INC-broken",', message_id="browser-broken", raw=True)
        api = Admin(url, token=SECRETS.viewer_token)
        conversation_of(api, key)
        parked_id(api, "browser-broken")
        wait = WebDriverWait(browser, 20)

        browser.get(url + "/feed")
        assert "/sign-in" in browser.current_url
        browser.find_element(By.NAME, "user").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(SECRETS.admin_password)
        shot(browser, "01-sign-in")
        browser.find_element(By.CSS_SELECTOR, "button.primary").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "header form.search")))
        assert browser.current_url.endswith("/feed")

        box = browser.find_element(By.CSS_SELECTOR, "header form.search input[name=q]")
        box.send_keys(key)
        box.submit()
        wait.until(EC.url_contains("/conversations/"))
        # Wait for the last ack to be on it (the page is read once; reload until it is).
        deadline = time.time() + 20
        while "error ack" not in browser.page_source and time.time() < deadline:
            time.sleep(0.5)
            browser.refresh()
        text = browser.find_element(By.TAG_NAME, "body").text
        for expected in [number, key, "create-at-vendor", "update-at-vendor", "hand-back-to-customer", "error ack",
                         "open in another session", "original_group: (none) -> ", "Local Service Desk", "alice"]:
            assert expected in text, expected
        tickets = {row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").text
                   for row in browser.find_elements(By.CSS_SELECTOR, "table.kv tr") if row.find_elements(By.TAG_NAME, "th")}
        assert tickets.get("customer-a") == number and tickets.get("vendor-x") == key
        browser.find_element(By.CSS_SELECTOR, "tr.k-received details summary").click()
        shot(browser, "02-conversation")
        # It fits a 1400 px window: nothing scrolls sideways (issue 26: it did).
        for width in (1400, 1280):
            browser.set_window_size(width, 1000)
            overflow = browser.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"the conversation page scrolls {overflow} px sideways in a {width} px window"
        browser.set_window_size(1440, 1000)

        # What if A raised the priority now: the decision against this conversation, nothing sent.
        browser.find_element(By.ID, "whatif").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "form.whatif textarea")))
        browser.find_element(By.NAME, "message").send_keys(json.dumps({"number": number, "priority": "1", "sys_updated_by": "zoe"}))
        browser.find_element(By.CSS_SELECTOR, "form.whatif button").click()
        trace = wait.until(EC.presence_of_element_located((By.ID, "trace"))).text
        assert f"message: update of customer-a/{number} by zoe" in trace and "matched  update-at-vendor" in trace, trace
        assert trace.rstrip().endswith("(nothing was sent or stored)"), trace
        shot(browser, "08-what-if")

        browser.get(url + "/feed")
        rows = len(browser.find_elements(By.CSS_SELECTOR, "#feed tbody tr[data-cursor]"))
        esb.publish("vendor-x", jira(key, number, status="Waiting for customer", user="Vera Vendor"), message_id=f"{key}-live")
        # Live: the new message appears without a reload.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#feed tbody tr.new")) >= 1)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#feed tbody tr[data-cursor]")) > rows
        assert "parked" in browser.find_element(By.ID, "feed").text
        shot(browser, "03-feed")

        browser.get(url + "/endpoints")
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "customer-a" in text and "vendor-x" in text and ("operational" in text or "warning" in text)
        shot(browser, "04-endpoints")

        browser.get(url + "/parked")
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "not valid JSON" in text and '{"number": "INC-broken",' in text
        # One page holds them all: no link to a next page; a whole body: no "Shown:" note.
        assert "Older ones after these" not in text
        shot(browser, "05-parked")
        browser.find_element(By.LINK_TEXT, "browser-broken").click()
        assert "INC-broken" in browser.find_element(By.TAG_NAME, "pre").text
        assert "Shown:" not in browser.find_element(By.TAG_NAME, "body").text
        shot(browser, "06-parked-message")

        browser.get(url + "/config")
        assert "create-at-vendor" in browser.page_source
        # The retry policy is configuration too: what it handles, how it waits, what it sends on giving up.
        policy = browser.find_element(By.CSS_SELECTOR, "#retries tbody tr").text
        assert "vendor-locked" in policy and "vendor-x" in policy and "comment to customer-a" in policy, policy
        shot(browser, "07-configuration")
    finally:
        sb.stop()


JIRA_TOKEN = "jira-" + uuid.uuid4().hex
JIRA_ENDPOINT = """
endpoints:
  jira-b:
    ticket_id: $.issue.key
    rest: {{profile: jira-cloud, base_url: "http://127.0.0.1:{port}", auth: bearer, token_env: SB_TEST_JIRA_TOKEN}}
rules:
  - name: jira-b-create
    priority: 100000
    from: customer-a
    when: [{{field: $.jira_b, exists: true}}, {{reference: jira-b, exists: false}}]
    stop: true
    send: [{{to: jira-b, type: create, body: {{fields: {{summary: {{field: $.short_description}}, project: {{key: VX}}}}}}}}]
  - name: jira-b-update
    priority: 100000
    from: customer-a
    when: [{{field: $.jira_b, exists: true}}, {{reference: jira-b, exists: true}}]
    stop: true
    send: [{{to: jira-b, type: update, body: {{key: {{reference: jira-b}}, fields: {{summary: {{field: $.short_description}}}}}}}}]
"""


def test_the_endpoints_page_lists_the_tickets_that_wait_why_and_when_next(vhost, esb, browser):
    """Issue 26, "Visible": a Jira issue answering 429 (per issue, Retry-After 60) holds its two updates: the
    endpoints page lists both under the REST endpoint, the second behind the first, with the code, the
    reason, the scope and the next attempt; another ticket of the endpoint is written meanwhile."""
    fake = FakeJira(JIRA_TOKEN, retry_after="15")
    sb = Switchboard(vhost, env=dict(SECRETS.env, SB_TEST_JIRA_TOKEN=JIRA_TOKEN, SB_ADMIN_CHART_INTERVAL="1s"),
                     extra_config=JIRA_ENDPOINT.format(port=fake.port)).start()
    try:
        url = sb.admin_url()
        made = []
        for _ in range(2):
            number = f"INCB{uuid.uuid4().hex[:6]}"
            esb.publish("customer-a", {"number": number, "jira_b": True, "short_description": f"{number} created"}, message_id=f"{number}-0")
            key = polled(lambda: fake.key_of(f"{number} created"))
            assert key and polled(lambda: key in sb.timeline("customer-a", number)), fake.requests
            made.append((number, key))
        (hot, hot_key), (calm, calm_key) = made
        with fake.lock:
            fake.limited[hot_key] = 100
        for n in (1, 2):
            esb.publish("customer-a", {"number": hot, "jira_b": True, "short_description": f"hot {n}"}, message_id=f"{hot}-{n}")
        assert polled(lambda: "waits (behind)" in sb.timeline("customer-a", hot)), sb.timeline("customer-a", hot)
        esb.publish("customer-a", {"number": calm, "jira_b": True, "short_description": "calm 1"}, message_id=f"{calm}-1")
        assert polled(lambda: fake.issues[calm_key]["fields"]["summary"] == "calm 1"), fake.requests

        browser.get(url + "/endpoints")
        browser.find_element(By.NAME, "user").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(SECRETS.admin_password)
        browser.find_element(By.CSS_SELECTOR, "button.primary").click()
        WebDriverWait(browser, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "h1")))
        browser.get(url + "/endpoints")
        table = browser.find_element(By.CSS_SELECTOR, 'table.waiting[data-endpoint="jira-b"]')
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr[data-message]")
        assert len(rows) == 2, table.text
        first, second = sorted(rows, key=lambda r: "behind" in r.text)
        for row in rows:
            cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
            assert cells[0] == hot_key and cells[1].startswith("update ") and "429" in cells[2] and "jira-per-issue-on-write" in cells[2], cells
            assert cells[5].startswith("in ") or cells[5] == "due", cells
        assert [c.text for c in first.find_elements(By.TAG_NAME, "td")][3] == "ticket"
        assert [c.text for c in first.find_elements(By.TAG_NAME, "td")][2] == "429 jira-per-issue-on-write", "the code once"
        behind = second.find_element(By.CSS_SELECTOR, "[data-behind]")
        assert behind.get_attribute("data-behind") == first.get_attribute("data-message") and behind.text.startswith("behind …"), second.text
        assert second.find_elements(By.TAG_NAME, "td")[3].text == "behind"
        # The front of the line first.
        assert rows[0] == first, table.text
        assert calm_key not in table.text
        shot(browser, "09-endpoints-waiting")

        # The limit has passed (the fake says so now): "Try now" on the front message sends it at once, and
        # lifts the ticket's hold, so the one behind follows when it comes back; the waiting original is
        # dropped when it comes back (never written twice).
        with fake.lock:
            fake.limited[hot_key] = 0
        conversation_page = first.find_element(By.CSS_SELECTOR, "td a").get_attribute("href")
        clicked = time.monotonic()
        first.find_element(By.CSS_SELECTOR, "form.try-now button").click()
        WebDriverWait(browser, 20).until(EC.presence_of_element_located((By.ID, "tried")))
        assert "/endpoints?tried=" in browser.current_url
        shot(browser, "10-endpoints-tried")

        def puts():
            return [(t, b["fields"]["summary"], c) for (t, m, b, c) in fake.writes(hot_key) if m == "PUT"]
        assert polled(lambda: any(s == "hot 1" and c == 204 for _, s, c in puts()), timeout=10), puts()
        sent_at = next(t for t, s, c in puts() if s == "hot 1" and c == 204)
        assert sent_at - clicked < 5, "sent at once, not at the end of its 15 s wait"
        assert polled(lambda: any(s == "hot 2" and c == 204 for _, s, c in puts()), timeout=40), puts()
        time.sleep(3)
        written = [(s, c) for _, s, c in puts()]
        assert [s for s, c in written if c == 204] == ["hot 1", "hot 2"], written
        assert all(c == 429 for s, c in written if s == "hot 1" and c != 204), written
        assert fake.issues[hot_key]["fields"]["summary"] == "hot 2"
        # The charts of the last hour (a sample a second here): customer-a's messages in and jira-b's out, as
        # the timeline has them, drawn on the page itself (inline SVG, nothing from elsewhere).
        for n in range(3):
            esb.publish("customer-a", {"number": calm, "jira_b": True, "short_description": f"calm {n + 2}"}, message_id=f"{calm}-c{n}")
        assert polled(lambda: fake.issues[calm_key]["fields"]["summary"] == "calm 4"), fake.requests
        time.sleep(2.5)
        browser.get(url + "/endpoints")

        def chart(endpoint, title):
            box = browser.find_element(By.CSS_SELECTOR, f'.charts[data-endpoint="{endpoint}"]')
            return next(svg for svg in box.find_elements(By.CSS_SELECTOR, "svg.chart")
                        if svg.find_element(By.TAG_NAME, "title").get_attribute("textContent") == title)

        def peak(svg, color):
            """The highest point drawn in `color` (the smallest y: 0 is at the chart's baseline, y 94)."""
            ys = [float(p.split(",")[1]) for line in svg.find_elements(By.CSS_SELECTOR, f'polyline[stroke="{color}"]')
                  for p in line.get_attribute("points").split()]
            ys += [float(c.get_attribute("cy")) for c in svg.find_elements(By.CSS_SELECTOR, f'circle[fill="{color}"]')]
            return min(ys, default=94.0)
        titles = [t.get_attribute("textContent") for t in browser.find_elements(By.CSS_SELECTOR, '.charts[data-endpoint="jira-b"] svg.chart > title')]
        assert titles == ["Messages per 1 s", "Queue depth", "Oldest waiting", "p95 intake to decision"], titles
        assert peak(chart("customer-a", "Messages per 1 s"), "#2457c5") < 94, "customer-a's messages in are not drawn"
        assert peak(chart("jira-b", "Messages per 1 s"), "#b54708") < 94, "jira-b's messages out are not drawn"
        assert peak(chart("customer-a", "p95 intake to decision"), "#2457c5") <= 94
        assert 'src="http' not in browser.page_source and 'href="http' not in browser.page_source, "nothing from elsewhere"
        shot(browser, "11-endpoints-charts")

        # On the audit, on the conversation's page.
        browser.get(conversation_page)
        shown = browser.find_element(By.TAG_NAME, "body").text
        assert "try-now by admin: sent now from the endpoints page" in shown, shown
    finally:
        sb.stop()
        fake.stop()
