"""The web chat page in a real browser: Debian's Chromium, driven by Playwright.

Runs against the live gateway (the `live_gateway` fixture) and the real trained model.
`scripts/setup-browser` installs Chromium and the pinned axe-core. Playwright never
downloads a browser here, and every address outside the gateway (the exit site
included) is answered by a tiny local page, so nothing leaves the machine.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.browsers import new_context, serious_violations

pytestmark = pytest.mark.browser

REPLY_TIMEOUT_MS = 90_000  # the real model; the first reply can be slow
START_URL = "https://www.example.com/start"  # a page the person was on before the chat


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def page(chromium: Browser, live_gateway: Any) -> Iterator[Page]:
    context = new_context(chromium, live_gateway.url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


# ------------------------------------------------------------------ helpers


def chat_url(gateway: Any) -> str:
    return gateway.url.rstrip("/") + "/"


def open_chat(page: Page, gateway: Any) -> None:
    page.goto(chat_url(gateway))
    expect(page.locator("#chat")).to_be_visible()


def is_messages_post(response: Any) -> bool:
    return response.request.method == "POST" and response.url.endswith("/messages")


def is_session_post(response: Any) -> bool:
    return response.request.method == "POST" and response.url.endswith("/api/web/sessions")


def send(page: Page, text: str) -> list[dict[str, Any]]:
    """Type into the focused message box, press Enter; return the replies once shown."""
    with page.expect_response(is_messages_post, timeout=REPLY_TIMEOUT_MS) as info:
        page.keyboard.type(text)
        page.keyboard.press("Enter")
    response = info.value
    assert response.status == 200, f"{response.status}: {response.text()}"
    messages: list[dict[str, Any]] = response.json()["messages"]
    for message in messages:
        expect(
            page.locator(f'#transcript .message--bot[data-id="{message["id"]}"]')
        ).to_be_visible()
    expect(page.locator("#typing")).to_be_empty()
    return messages


def focus_message_box_with_tab(page: Page) -> None:
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "message":
            return
    pytest.fail("Tab never reached the message box")


def start_chat(page: Page, gateway: Any, text: str = "hello") -> str:
    """Open the chat, send one message; return the session id the page was given."""
    open_chat(page, gateway)
    page.get_by_label("Your message").focus()
    with page.expect_response(is_session_post, timeout=REPLY_TIMEOUT_MS) as created:
        send(page, text)
    session_id: str = created.value.json()["session_id"]
    return session_id


def assert_session_ended(page: Page, gateway: Any, session_id: str) -> None:
    """The old session refuses messages. The page's DELETE is fire-and-forget: allow it a moment."""
    url = f"{gateway.url.rstrip('/')}/api/web/sessions/{session_id}/messages"
    deadline = time.monotonic() + 10
    while True:
        status = page.request.post(url, data={"text": "hello"}, timeout=REPLY_TIMEOUT_MS).status
        if status == 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 404, f"the session still answers after exit ({status})"


def assert_exited(page: Page, gateway: Any, exit_url: str) -> None:
    page.wait_for_url(exit_url)
    expect(page.locator("h1")).to_have_text("Weather")
    # location.replace: Back goes to the page before the chat, never to the transcript.
    page.go_back()
    assert page.url == START_URL
    assert not page.url.startswith(chat_url(gateway))
    page.go_forward()
    assert page.url == exit_url


# ------------------------------------------------------------------ tests


def test_a_typed_question_gets_an_answer_and_focus_stays_in_the_box(
    page: Page, live_gateway: Any
) -> None:
    open_chat(page, live_gateway)
    log = page.get_by_role("log")
    expect(log.locator(".message--bot")).to_have_count(1)  # the greeting
    expect(log).to_contain_text("Waymark")

    focus_message_box_with_tab(page)
    replies = send(page, "what does charged mean")

    expect(log.locator(".message--user")).to_have_text(re.compile(r"You.*what does charged mean"))
    assert replies, "no reply"
    texts = [page.locator(f'.message--bot[data-id="{m["id"]}"]').inner_text() for m in replies]
    assert any(t.startswith("Waymark") for t in texts)
    assert any("charged" in t.lower() for t in texts), texts
    assert page.evaluate("document.activeElement.id") == "message"
    expect(page.get_by_label("Your message")).to_have_value("")


def test_buttons_from_the_bot_are_buttons_and_clicking_one_sends_it(
    page: Page, live_gateway: Any
) -> None:
    open_chat(page, live_gateway)
    page.get_by_label("Your message").focus()
    replies = send(page, "they said no further action, can I challenge it")
    with_buttons = [m for m in replies if m["buttons"]]
    if not with_buttons:
        pytest.skip(f"the real bot's reply had no buttons: {[m['text'] for m in replies]}")

    message = with_buttons[-1]
    group = page.locator(f'.message--bot[data-id="{message["id"]}"]').get_by_role("group")
    buttons = group.get_by_role("button")
    expect(buttons).to_have_text([b["title"] for b in message["buttons"]])

    chosen = message["buttons"][0]
    with page.expect_response(is_messages_post, timeout=REPLY_TIMEOUT_MS) as info:
        buttons.first.click()
    assert info.value.request.post_data_json == {
        "text": chosen["title"],
        "payload": chosen["payload"],
    }
    assert info.value.status == 200
    for reply in info.value.json()["messages"]:
        expect(page.locator(f'.message--bot[data-id="{reply["id"]}"]')).to_be_visible()
    expect(page.locator(".message--user").last).to_contain_text(chosen["title"])
    assert page.evaluate("document.activeElement.id") == "message"


def test_buttons_render_and_send_their_payload(page: Page, live_gateway: Any) -> None:
    """Front-end rendering alone: one reply with buttons is served by the test itself."""
    open_chat(page, live_gateway)
    canned = {
        "messages": [
            {
                "id": 2_000_000_000,
                "text": "Who made the decision?",
                "buttons": [
                    {"title": "The police", "payload": "/inform_police"},
                    {"title": "Not now", "payload": "/deny"},
                ],
            }
        ]
    }
    sent: list[Any] = []

    def messages(route: Any) -> None:
        sent.append(route.request.post_data_json)
        if len(sent) == 1:
            route.fulfill(status=200, json=canned)
        else:
            route.fulfill(status=200, json={"messages": []})

    page.route("**/api/web/sessions/*/messages", messages)
    page.get_by_label("Your message").focus()
    send(page, "can I challenge it")
    group = page.get_by_role("group", name="Reply options")
    expect(group.get_by_role("button")).to_have_text(["The police", "Not now"])
    group.get_by_role("button", name="Not now").click()
    expect(page.locator(".message--user").last).to_contain_text("Not now")
    assert sent[-1] == {"text": "Not now", "payload": "/deny"}
    assert page.evaluate("document.activeElement.id") == "message"


def test_exit_this_page_button_leaves_for_good_and_ends_the_session(
    page: Page, live_gateway: Any
) -> None:
    page.goto(START_URL)
    session_id = start_chat(page, live_gateway)
    exit_button = page.get_by_role("button", name="Exit this page")
    expect(exit_button).to_be_visible()
    exit_url = exit_button.get_attribute("href")
    assert exit_url and not exit_url.startswith(chat_url(live_gateway))

    with page.expect_request(lambda r: r.method == "DELETE"):
        exit_button.click()
    assert_exited(page, live_gateway, exit_url)
    assert_session_ended(page, live_gateway, session_id)


def test_pressing_shift_3_times_exits_too(page: Page, live_gateway: Any) -> None:
    page.goto(START_URL)
    session_id = start_chat(page, live_gateway)
    exit_url = page.get_by_role("button", name="Exit this page").get_attribute("href")
    assert exit_url

    page.keyboard.press("Shift")
    expect(page.locator("#exit-status")).to_have_text("Shift, press 2 more times to exit.")
    page.keyboard.press("Shift")
    expect(page.locator("#exit-status")).to_have_text("Shift, press 1 more time to exit.")
    with page.expect_request(lambda r: r.method == "DELETE"):
        page.keyboard.press("Shift")
    assert_exited(page, live_gateway, exit_url)
    assert_session_ended(page, live_gateway, session_id)


def test_typing_capitals_does_not_count_towards_exit(page: Page, live_gateway: Any) -> None:
    open_chat(page, live_gateway)
    page.get_by_label("Your message").focus()
    for _ in range(3):
        page.keyboard.down("Shift")
        page.keyboard.press("A")
        page.keyboard.up("Shift")
    expect(page.get_by_label("Your message")).to_have_value("AAA")
    expect(page.locator("#exit-status")).to_be_empty()
    assert page.url == chat_url(live_gateway)


def test_a_failed_send_keeps_the_text_and_says_so(page: Page, live_gateway: Any) -> None:
    start_chat(page, live_gateway)
    page.route("**/api/web/sessions/*/messages", lambda route: route.abort("internetdisconnected"))
    box = page.get_by_label("Your message")
    users = page.locator(".message--user")
    expect(users).to_have_count(1)

    page.keyboard.type("is anyone there")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("your message was not sent")
    expect(box).to_have_value("is anyone there")
    expect(users).to_have_count(1)  # the unsent message is not shown as sent
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#typing")).to_be_empty()
    assert page.evaluate("document.activeElement.id") == "message"

    page.unroute("**/api/web/sessions/*/messages")
    send(page, "")  # Enter again: the kept text goes this time
    expect(users).to_have_count(2)
    expect(page.get_by_role("alert")).to_be_empty()
    expect(box).to_have_value("")


def test_an_ended_chat_says_so_and_a_new_one_can_start(page: Page, live_gateway: Any) -> None:
    session_id = start_chat(page, live_gateway)
    page.keyboard.type("one more thing")
    # The chat ends elsewhere (another tab exited, or it expired).
    response = page.request.delete(f"{live_gateway.url.rstrip('/')}/api/web/sessions/{session_id}")
    assert response.status == 204
    expect(page.get_by_text("This chat has ended.")).to_be_visible()
    expect(page.get_by_label("Your message")).to_be_hidden()

    page.get_by_role("button", name="Start a new chat").click()
    expect(page.get_by_role("log").locator(".message")).to_have_count(1)  # the greeting again
    box = page.get_by_label("Your message")
    expect(box).to_have_value("one more thing")
    assert page.evaluate("document.activeElement.id") == "message"
    with page.expect_response(is_session_post) as created:
        send(page, "")
    assert created.value.json()["session_id"] != session_id


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1280, "height": 800}, {"width": 320, "height": 640}],
    ids=["desktop", "320px"],
)
def test_no_serious_accessibility_problems_after_a_conversation(
    chromium: Browser, live_gateway: Any, viewport: dict[str, int]
) -> None:
    # axe-core is injected as a script: the page's own policy would refuse it.
    context = new_context(chromium, live_gateway.url, viewport=viewport, bypass_csp=True)
    try:
        page = context.new_page()
        start_chat(page, live_gateway, "they said no further action, can I challenge it")
        problems = serious_violations(page)
        assert not problems, "axe-core found:\n" + "\n".join(problems)
        # Reflow: nothing needs scrolling sideways, even at 320px.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"page is {width}px wide"
    finally:
        context.close()


def test_nothing_is_kept_in_browser_storage(page: Page, live_gateway: Any) -> None:
    session_id = start_chat(page, live_gateway, "what does charged mean")
    local, session, cookie = page.evaluate(
        "[localStorage.length, sessionStorage.length, document.cookie]"
    )
    assert local == 0 and session == 0
    assert session_id not in cookie
    assert all(session_id not in c["value"] for c in page.context.cookies())


def test_phone_numbers_in_replies_are_tel_links(page: Page, live_gateway: Any) -> None:
    open_chat(page, live_gateway)
    page.locator("#message").focus()
    send(page, "he is outside with a knife, I'm scared")
    link = page.locator('#transcript .message--bot a[href="tel:999"]').first
    expect(link).to_be_visible()
    expect(link).to_have_text("999")
    # What the person typed stays plain text, numbers and all.
    expect(page.locator("#transcript .message--user a")).to_have_count(0)


def test_the_page_only_talks_to_the_gateway(page: Page, live_gateway: Any) -> None:
    """No third-party requests (scripts, fonts, analytics), and a policy that forbids them."""
    origin = live_gateway.url.rstrip("/")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    with page.expect_response(chat_url(live_gateway)) as loaded:
        open_chat(page, live_gateway)
    policy = loaded.value.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    page.get_by_label("Your message").focus()
    assert send(page, "can I report without giving my name")
    assert requested and all(
        url.startswith(origin) or url.startswith("data:") for url in requested
    ), requested
    assert not violations, violations
