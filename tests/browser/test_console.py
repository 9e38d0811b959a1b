"""The coordinator console in a real browser: Debian's Chromium, driven by Playwright.

Runs against the live gateway (the real model, fake Twilio) like test_web_chat.py:
a coordinator signs in, a victim's SMS puts a handoff in the queue and it appears
without a reload, the coordinator claims it, replies (the victim gets the SMS) and
closes it. Text from a victim that looks like HTML stays text, and axe-core finds no
serious accessibility problems on the console's pages.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from bot.cases.models import Task
from bot.handoff.models import CannedReply, Coordinator, Handoff
from tests.browser.browsers import new_context, serious_violations
from tests.handoff.conftest import (
    PASSWORD,
    conversation_of,
    coordinator,
    everyone_off_duty,
    greeted,
)
from tests.harness import LiveGateway, fresh_number, wait_until

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 60_000  # a victim's SMS goes through the gateway before the queue hears
DANGER = "he is outside with a knife, I'm scared"
HOSTILE = '<script>window.pwned=1</script> <img src=x onerror="window.pwned=1">'
# Kept on every page the context opens (injected by the browser, so the page's CSP
# doesn't apply): any CSP violation the console itself causes.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


# ------------------------------------------------------------------ fixtures


def console_context(browser: Browser, base_url: str, **options: Any) -> BrowserContext:
    return new_context(
        browser,
        base_url,
        init_script=WATCH_CSP,
        viewport={"width": 1280, "height": 800},
        **options,
    )


@pytest.fixture
def page(chromium: Browser, live_gateway: LiveGateway) -> Iterator[Page]:
    """A page under the console's real Content-Security-Policy."""
    context = console_context(chromium, live_gateway.url)
    yield context.new_page()
    context.close()


@pytest.fixture
def bare_page(chromium: Browser, live_gateway: LiveGateway) -> Iterator[Page]:
    """A page with the CSP switched off: only the console's own care keeps text as text
    (and axe-core can be added to the page)."""
    context = console_context(chromium, live_gateway.url, bypass_csp=True)
    yield context.new_page()
    context.close()


# ------------------------------------------------------------------ helpers


def sign_in(page: Page, live: LiveGateway, who: Coordinator) -> None:
    page.goto(live.url + "/console/login")
    page.get_by_label("Username").fill(who.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Queue")


def victim_in_danger(live: LiveGateway) -> tuple[str, int, int]:
    """A victim's SMS that signals danger: the gateway starts an urgent handoff itself.
    (number, conversation id, handoff id)"""
    number = fresh_number()
    live.sms(number, DANGER)
    conversation = conversation_of(live, "sms", number)

    def opened() -> list[int]:
        with live.db() as session:
            found = session.scalar(
                select(Handoff.id).where(
                    Handoff.conversation_id == conversation.id, Handoff.state != "closed"
                )
            )
        return [found] if found else []

    return number, conversation.id, wait_until(opened, 1, timeout=60)[0]


def queue_row(page: Page, conversation_id: int) -> Any:
    return page.locator(f'#queue-body tr[data-conversation-id="{conversation_id}"]')


def csp_violations(page: Page) -> list[str]:
    return list(page.evaluate("window.__csp || []"))


def assert_accessible(page: Page, where: str) -> None:
    problems = serious_violations(page)
    assert not problems, f"axe-core found on {where}:\n" + "\n".join(problems)


# ------------------------------------------------------------------ tests


def test_a_handoff_appears_live_and_is_claimed_answered_and_closed(
    page: Page, live_gateway: LiveGateway
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live)
    sign_in(page, live, sam)
    page.evaluate("window.__same_page = true")

    number, conversation_id, handoff_id = victim_in_danger(live)
    row = queue_row(page, conversation_id)
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    # Live: the same page, never reloaded.
    assert page.evaluate("window.__same_page") is True
    expect(row).to_contain_text("Urgent")
    expect(row).to_contain_text("Said they are in danger")
    expect(row).to_contain_text("Waiting")
    expect(page.locator("#queue")).to_have_attribute("aria-live", "polite")

    row.get_by_role("button", name=re.compile(r"^Claim")).click()
    page.wait_for_url(re.compile(rf"/console/handoffs/{handoff_id}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Handoff #{handoff_id}")
    expect(page.locator("#state-text")).to_have_text(
        "You have this conversation. Your messages go to the person."
    )
    expect(page.locator("#risk-text")).to_contain_text("Urgent")
    expect(page.locator("#transcript")).to_contain_text(DANGER)
    wait_until(
        lambda: [t for t in live.twilio.to(number) if f"talking to {sam.display_name}" in t], 1
    )

    # A canned reply fills the box; the coordinator can change it before sending.
    page.get_by_label("Canned reply").select_option(label="Hello")
    page.get_by_role("button", name="Use this reply").click()
    box = page.get_by_label("Message to the person")
    expect(box).to_have_value(re.compile(r"^Hello, I'm from the Waymark team"))
    expect(box).to_be_focused()
    reply = f"Hello, this is {sam.display_name}. Are you somewhere safe? {uuid.uuid4().hex[:6]}"
    box.fill(reply)
    page.get_by_role("button", name="Send message").click()
    expect(page.locator("#status")).to_have_text("Message sent.")
    wait_until(lambda: [t for t in live.twilio.to(number) if t == reply], 1)
    expect(page.locator("#transcript .line--coordinator").last).to_contain_text(reply)
    expect(box).to_have_value("")

    # The victim writes back: it shows up on the open page by itself, as text.
    live.sms(number, HOSTILE)
    last = page.locator("#transcript .line--person .line__text").last
    expect(last).to_have_text(HOSTILE, timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#transcript img").count() == 0

    page.get_by_label("Outcome").select_option("resolved")
    page.get_by_role("button", name="Close conversation").click()
    expect(page.locator("#state-text")).to_have_text(
        "Closed. The assistant answers the person again."
    )
    expect(page.locator("#reply-section")).to_be_hidden()
    wait_until(lambda: [t for t in live.twilio.to(number) if t.startswith("You are back with")], 1)
    assert conversation_of(live, "sms", number).owner == "bot"
    assert page.evaluate("window.pwned") is None
    assert csp_violations(page) == []

    page.goto(live.url + "/console")
    expect(queue_row(page, conversation_id)).to_have_count(0)
    assert csp_violations(page) == []


def test_victim_text_never_runs_even_without_the_csp(
    bare_page: Page, live_gateway: LiveGateway
) -> None:
    """With the Content-Security-Policy switched off, only the console's use of
    textContent stands between a victim's words and the page."""
    page, live = bare_page, live_gateway
    everyone_off_duty(live)
    sam = coordinator(live)
    sign_in(page, live, sam)
    number, conversation_id, handoff_id = victim_in_danger(live)
    expect(queue_row(page, conversation_id)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    page.goto(f"{live.url}/console/handoffs/{handoff_id}")
    page.get_by_role("button", name="Claim this conversation").click()
    expect(page.locator("#reply-section")).to_be_visible()

    live.sms(number, HOSTILE)  # arrives while the page is open: rendered by the script
    last = page.locator("#transcript .line--person .line__text").last
    expect(last).to_have_text(HOSTILE, timeout=LIVE_TIMEOUT_MS)
    page.get_by_label("Add a note").fill(HOSTILE)
    page.get_by_role("button", name="Save note").click()
    expect(page.locator("#notes .line__text").last).to_have_text(HOSTILE)
    page.wait_for_timeout(300)  # an image error handler would have fired by now
    assert page.evaluate("window.pwned") is None
    assert page.locator("#packet script, #packet img").count() == 0

    page.reload()  # now rendered by the server's templates
    expect(page.locator("#transcript .line--person .line__text").last).to_have_text(HOSTILE)
    expect(page.locator("#notes .line__text").last).to_have_text(HOSTILE)
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#packet script, #packet img").count() == 0


def test_a_wrong_password_is_refused_and_signing_out_ends_the_session(
    page: Page, live_gateway: LiveGateway
) -> None:
    live = live_gateway
    sam = coordinator(live)
    page.goto(live.url + "/console")
    page.wait_for_url(re.compile(r"/console/login$"))
    page.get_by_label("Username").fill(sam.username)
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()
    summary = page.locator(".error-summary")
    expect(summary).to_contain_text("Enter a correct username and password.")
    expect(summary).to_be_focused()
    expect(page.get_by_label("Password")).to_have_value("")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Queue")
    cookie = next(c for c in page.context.cookies() if c["name"] == "waymark_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto(live.url + "/console")
    page.wait_for_url(re.compile(r"/console/login$"))
    assert csp_violations(page) == []


def test_the_duty_switch_and_the_skip_link_work_from_the_keyboard(
    page: Page, live_gateway: LiveGateway
) -> None:
    live = live_gateway
    sam = coordinator(live, on_duty=False)
    sign_in(page, live, sam)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main-content")).to_be_focused()

    button = page.get_by_role("button", name="Go on duty")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("You are now on duty.")
    expect(page.get_by_role("button", name="Go off duty")).to_be_visible()
    expect(page.locator("#duty-text")).to_contain_text("You are on duty.")
    with live.db() as session:
        found = session.get(Coordinator, sam.id)
        assert found is not None and found.on_duty is True


def test_tasks_take_over_and_transfer_from_the_page(page: Page, live_gateway: LiveGateway) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam, alex = coordinator(live), coordinator(live)
    with live.db() as session, session.begin():
        task = Task(
            kind="no_safe_route",
            dedupe_key=f"browser:{uuid.uuid4().hex}",
            priority=0,
            detail="No safe way to send an update on case 8800000/26.",
        )
        session.add(task)
        session.flush()
        task_id = task.id
    _, conversation = greeted(live)

    sign_in(page, live, sam)
    item = page.locator(f'#task-list li[data-task-id="{task_id}"]')
    expect(item).to_contain_text("Urgent")
    expect(item).to_contain_text("No safe way to contact")
    item.get_by_role("button", name=re.compile("^Mark as done")).click()
    expect(page.locator("#status")).to_have_text(f"Task {task_id} is done.")
    expect(item).to_have_count(0)

    page.get_by_label("Conversation number").fill("forty-two")
    page.get_by_role("button", name="Take over").click()
    expect(page.locator("#error-text")).to_have_text("Enter a conversation number, like 42.")
    page.get_by_label("Conversation number").fill(str(conversation.id))
    page.get_by_role("button", name="Take over").click()
    page.wait_for_url(re.compile(r"/console/handoffs/\d+$"))
    expect(page.locator("#state-text")).to_have_text(
        "You have this conversation. Your messages go to the person."
    )
    expect(page.locator("#transcript")).to_contain_text("hello")

    page.get_by_label("Transfer to (username)").fill("nobody-at-all")
    page.get_by_role("button", name="Transfer").click()
    expect(page.locator("#error-text")).to_have_text(
        "There is no coordinator called 'nobody-at-all'."
    )
    page.get_by_label("Transfer to (username)").fill(alex.username)
    page.get_by_role("button", name="Transfer").click()
    expect(page.locator("#status")).to_have_text(f"Transferred to {alex.display_name}.")
    expect(page.locator("#state-text")).to_have_text(f"Claimed by {alex.display_name}.")
    expect(page.locator("#reply-section")).to_be_hidden()
    expect(page.locator("#manage-section")).to_be_hidden()
    assert csp_violations(page) == []


def test_canned_replies_are_edited_and_added_on_their_page(
    page: Page, live_gateway: LiveGateway
) -> None:
    live = live_gateway
    sam = coordinator(live)
    title = f"Court {uuid.uuid4().hex[:6]}"
    with live.db() as session, session.begin():
        reply = CannedReply(title=title, text="We will check the court date.")
        session.add(reply)
        session.flush()
        reply_id = reply.id
    sign_in(page, live, sam)
    page.get_by_role("link", name="Canned replies").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Canned replies")

    page.locator(f"#canned-text-{reply_id}").fill("We are checking the court date now.")
    page.locator(f"#canned-title-{reply_id}").fill(title + " date")
    page.get_by_role("button", name=f"Save {title}", exact=True).click()
    expect(page.locator("#status")).to_have_text(f"Saved: {title} date.")
    expect(page.locator(f"#canned-heading-{reply_id}")).to_have_text(title + " date")

    added = f"Safe time {uuid.uuid4().hex[:6]}"
    page.locator("#canned-title-new").fill(added)
    page.locator("#canned-text-new").fill("When is a safe time to call you?")
    page.get_by_role("button", name="Add canned reply").click()
    expect(page.get_by_text("The canned reply was added.")).to_be_visible()
    expect(page.get_by_role("heading", name=added)).to_be_visible()
    with live.db() as session:
        row = session.get(CannedReply, reply_id)
        assert row is not None and row.text == "We are checking the court date now."
    assert csp_violations(page) == []


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1280, "height": 800}, {"width": 320, "height": 640}],
    ids=["desktop", "320px"],
)
def test_no_serious_accessibility_problems_on_the_console(
    chromium: Browser, live_gateway: LiveGateway, viewport: dict[str, int]
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    boss = coordinator(live, role="supervisor")
    context = console_context(chromium, live.url, bypass_csp=True)
    try:
        page = context.new_page()
        page.set_viewport_size(viewport)
        page.goto(live.url + "/console/login")
        assert_accessible(page, "the sign-in page")
        page.get_by_label("Username").fill(boss.username)
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".error-summary")).to_be_visible()
        assert_accessible(page, "the sign-in page with an error")

        sign_in(page, live, boss)
        _, conversation_id, handoff_id = victim_in_danger(live)
        expect(queue_row(page, conversation_id)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        assert_accessible(page, "the queue")

        page.goto(f"{live.url}/console/handoffs/{handoff_id}")
        page.get_by_role("button", name="Claim this conversation").click()
        expect(page.locator("#reply-section")).to_be_visible()
        page.get_by_role("button", name="Send message").click()  # empty: an error
        expect(page.locator("#error-summary")).to_be_visible()
        assert_accessible(page, "a handoff")

        for path, where in (("/console/canned", "canned replies"), ("/console/audit", "audit")):
            page.goto(live.url + path)
            assert_accessible(page, where)
        if viewport["width"] <= 320:
            page.goto(live.url + "/console")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"] + 1, f"the queue is {width}px wide"
        page.goto(f"{live.url}/console/handoffs/{handoff_id}")
        page.get_by_label("Outcome").select_option("other")
        page.get_by_role("button", name="Close conversation").click()
        expect(page.locator("#state-text")).to_contain_text("Closed.")
    finally:
        context.close()


def test_a_referral_task_opens_its_printable_page_and_records_each_step(
    chromium: Browser, live_gateway: LiveGateway
) -> None:
    from tests.signposting.test_referrals import NEEDS, Person, referable

    live = live_gateway
    person = Person(live)
    person.marker({"needs": NEEDS})
    made = person.offer_and_agree(referable(live))
    context = console_context(chromium, live.url, bypass_csp=True)
    try:
        page = context.new_page()
        sign_in(page, live, coordinator(live))
        task = page.locator(f'#task-list [data-task-id="{made.task_id}"]')
        expect(task).to_contain_text("Referral to a service", timeout=LIVE_TIMEOUT_MS)
        task.get_by_role("link", name=re.compile("Open the referral")).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"Referral #{made.id}")
        expect(page.locator("#referral-shared")).to_contain_text("Polish interpreter")
        expect(page.locator("#referral-shared")).to_contain_text(person.address)
        assert_accessible(page, "a referral")
        for step in ("sent", "accepted", "contacted"):
            page.get_by_role("button", name=f"Mark as {step}").click()
            expect(page.locator(".notification")).to_be_visible()
        expect(page.locator("#referral-status")).to_contain_text("has contacted the person")
        expect(page.get_by_role("button", name=re.compile("Mark as"))).to_have_count(0)
        expect(page.locator("#referral-history li")).to_have_count(4)
        assert_accessible(page, "a closed referral")
    finally:
        context.close()
