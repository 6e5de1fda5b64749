"""The review page driven in a real headless browser (Debian chromium + chromedriver, Selenium).

A person signs in, sees a held mail, releases it and the page reaches the PagerDuty stand-in
through the real dispatcher; dismisses another with a note; and a hostile mail renders inert.
The service parts (store, web app, dispatcher, stand-in) run on one asyncio loop in a thread, so
the blocking WebDriver calls and the server never wait on each other.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr
from reviewkit import ON_CALL, mail_bytes, seed
from standins.pagerduty import PagerDutyStandIn
from test_web import HOSTILE, hostile_mail

from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.review import deeds, web
from escalator.settings import Settings
from escalator.store.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(
    not (os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver")),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)

T = TypeVar("T")
TOKEN = "browser-test-token"


class Harness:
    """Store, web app, PagerDuty stand-in on a private loop in a thread; `call` runs work there."""

    def __init__(self, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.pd = PagerDutyStandIn(folder)
        self.store = SQLiteStore(folder / "store.db")
        self.call(self._start(folder))

    async def _start(self, folder: Path) -> None:
        await self.pd.__aenter__()
        await self.store.open()
        self.settings = Settings(
            data_dir=folder,
            http_listen="127.0.0.1:0",
            review_token=SecretStr(TOKEN),
            pagerduty_routing_key=SecretStr(self.pd.routing_key),
            pagerduty_events_url=self.pd.url,
            pagerduty_ca_file=self.pd.ca_file,
        )
        # The clock pins release time to a Saturday: on call, so a release pages at once.
        self.web = await web.start(self.settings, self.store, clock=lambda: ON_CALL)

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    def held(self, raw: bytes) -> int:
        return self.call(seed(self.store, load_policy(self.settings), raw))

    def dispatch(self) -> int:
        """One burst of the real dispatcher: runs every due action, then returns."""

        async def burst() -> int:
            dispatcher = Dispatcher(self.store, self.settings)
            try:
                return await dispatcher.burst()
            finally:
                await dispatcher.close()

        return self.call(burst())

    def stop(self) -> None:
        async def stop() -> None:
            await self.web.stop()
            await self.store.close()
            await self.pd.__aexit__(None, None, None)

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    running = Harness(tmp_path_factory.mktemp("review-browser"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path="/usr/bin/chromedriver"), options=options
    )
    driver.implicitly_wait(10)  # a click starts a navigation; finds wait for the next page
    yield driver
    driver.quit()


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def wait_for_url(driver: Any, path: str) -> None:
    """Wait until the browser is AT `path`: "/login?next=/review" ends with "/review" too, so a
    suffix test would pass before the sign-in POST has even been answered."""
    from urllib.parse import urlsplit

    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: urlsplit(d.current_url).path == path)


def sign_in(driver: Any, harness: Harness, name: str = "amy") -> None:
    """Through the login form, as a person would: the review page sends us there first."""
    driver.delete_all_cookies()
    driver.get(f"{harness.web.url}/review")
    assert "/login" in driver.current_url
    by_id(driver, "name").send_keys(name)
    by_id(driver, "token").send_keys(TOKEN)
    by_id(driver, "sign-in").click()
    wait_for_url(driver, "/review")


def test_sign_in_see_held_mail_release_and_page_arrives(browser: Any, harness: Harness) -> None:
    """Log in, find the held mail with its evidence, press Release: PagerDuty gets one page."""
    mail_id = harness.held(mail_bytes(message_id="<release@x>"))
    sign_in(browser, harness)
    row = by_id(browser, f"mail-{mail_id}")  # one line in the queue; the rest on its page
    assert "any update on my PR?" in row.text and "not a live incident" in row.text
    browser.get(f"{harness.web.url}/mails/{mail_id}")
    assert "rule pr_chaser matched 'any update on my PR' in subject" in by_id(browser, "main").text
    by_id(browser, "release-note").send_keys("customer says prod is down")
    by_id(browser, "release").click()
    assert "Released" in by_id(browser, "done").text
    assert by_id(browser, "review-state").text == "released"
    assert harness.dispatch() >= 1
    assert len(harness.pd.triggered) == 1
    event = harness.pd.received[-1].body
    assert "any update on my PR?" in event["payload"]["summary"]
    browser.refresh()
    actions = by_id(browser, "actions").text
    assert "paged" in actions and "replied" not in actions  # no relay configured: reply dry run
    audit = by_id(browser, "audit").text
    assert "token:amy" in audit and "customer says prod is down" in audit
    (page,) = [a for a in harness.call(harness.store.mail_actions(mail_id)) if a.kind == "page"]
    shown = browser.execute_script(
        "return document.querySelector(arguments[0]).textContent", f"#payload-{page.id} pre"
    )
    # the mail's page shows exactly what PagerDuty received, all but the secret routing key
    assert json.loads(shown) == {key: v for key, v in event.items() if key != "routing_key"}
    assert harness.pd.routing_key not in browser.page_source


def test_dismiss_with_a_note(browser: Any, harness: Harness) -> None:
    """Dismiss asks why; the note and the person land in the audit trail; nothing is paged."""
    mail_id = harness.held(mail_bytes(message_id="<dismiss@x>"))
    pages_before = len(harness.pd.triggered)
    sign_in(browser, harness, "bob")
    browser.get(f"{harness.web.url}/mails/{mail_id}")
    by_id(browser, "dismiss-note").send_keys("PR chaser, answered in #ask-cloud-platform")
    by_id(browser, "dismiss").click()
    assert "Dismissed" in by_id(browser, "done").text
    audit = by_id(browser, "audit").text
    assert "token:bob" in audit and "PR chaser, answered in #ask-cloud-platform" in audit
    harness.dispatch()
    assert len(harness.pd.triggered) == pages_before


def test_hostile_mail_renders_inert(browser: Any, harness: Harness) -> None:
    """Script tags, an onerror image and javascript: links in a mail run nothing in the browser."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    mail_id = harness.held(hostile_mail())
    sign_in(browser, harness)
    for path in ("/review", f"/mails/{mail_id}"):
        browser.get(f"{harness.web.url}{path}")
        assert browser.execute_script("return window.pwned === undefined") is True
        with pytest.raises(NoAlertPresentException):
            _ = browser.switch_to.alert.text
        # counted in the page itself: find_elements would sit out the implicit wait when empty
        count = "return document.getElementsByTagName(arguments[0]).length"
        assert [browser.execute_script(count, tag) for tag in ("img", "script")] == [0, 0]
        hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
        assert not [href for href in hrefs if not href.startswith(harness.web.url)]
        assert HOSTILE in browser.find_element(By.TAG_NAME, "main").text  # shown, as text


# -- on a phone (issue 13): on-call reaches the page from the PagerDuty link --------------------

SNAPSHOTS = Path(os.environ.get("ESCALATOR_SNAPSHOTS", "/work/snapshots"))
LONG = "x" * 120  # an unbroken word wider than any phone
SIZES = [(390, 844, True), (1280, 800, False)]


def emulate(driver: Any, width: int, height: int, mobile: bool) -> None:
    """The viewport of a phone (mobile: the page's meta viewport applies) or of a desktop."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def horizontal_overflow(driver: Any) -> int:
    """How many CSS pixels the page is wider than the screen (0 when nothing scrolls sideways)."""
    script = "return document.documentElement.scrollWidth - window.innerWidth"
    return int(driver.execute_script(script))


def full_page(driver: Any, path: Path, width: int) -> None:
    """A screenshot of the whole page, top to bottom, at the emulated width."""
    import base64

    height = driver.execute_script("return document.documentElement.scrollHeight")
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    assert png_size(path)[0] == width


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.fixture(scope="module")
def queue_of_13(harness: Harness) -> list[int]:
    """Fourteen mails, one released (13 held), one with an unbroken 120-character subject."""
    ids = [
        harness.held(
            mail_bytes(
                subject=f"any update on my PR? {LONG if n == 0 else n}",
                sender=f"Dev Person <dev{LONG if n == 0 else n}@justice.gov.uk>",
                message_id=f"<queue{n}@x>",
            )
        )
        for n in range(14)
    ]
    released = ids[-1]  # one released and dispatched: actions and payloads on its page
    policy = load_policy(harness.settings)
    harness.call(deeds.release(harness.store, policy, released, "token:amy", LONG))
    harness.dispatch()
    return ids


@pytest.mark.parametrize(("width", "height", "mobile"), SIZES)
def test_review_pages_fit_the_screen_with_no_sideways_scroll(
    browser: Any, harness: Harness, queue_of_13: list[int], width: int, height: int, mobile: bool
) -> None:
    """At 390x844 and 1280x800 the queue, a mail's page (actions, payloads, audit) and the
    escalations table are no wider than the screen; the queue of 13 is one short line each."""
    sign_in(browser, harness)
    mail_id = queue_of_13[-1]
    emulate(browser, width, height, mobile)
    try:
        for path in (f"/mails/{mail_id}", "/escalations", "/review"):
            browser.get(f"{harness.web.url}{path}")
            by_id(browser, "main")
            assert horizontal_overflow(browser) <= 0, path
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SNAPSHOTS / f"review-{width}.png"
        assert browser.save_screenshot(str(shot))
        assert png_size(shot) == (width, height)
        rows = browser.execute_script(
            "return [...document.querySelectorAll('#queue > li')].map(li => li.offsetHeight)"
        )
        assert len(rows) >= 13 and max(rows) <= (70 if mobile else 45)  # one line (two on a phone)
        browser.get(f"{harness.web.url}/mails/{mail_id}")
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert horizontal_overflow(browser) <= 0
        full_page(browser, SNAPSHOTS / f"mail-{width}.png", width)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
