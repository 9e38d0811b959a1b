"""Every route refuses what it should, derived from the app's own route table.

Nothing here lists the routes to check: they are read from the app, so a route added
later without protection fails these tests. What is public is a short allow-list.

- Console (`/console/...`): a stranger is sent to sign in (pages, 303) or refused
  (API, 401); supervisor-only routes refuse a coordinator (403); state-changing routes
  refuse a missing CSRF token (403).
- Agency API (`/api/...` except the public web chat under `/api/web/`): no key is 401,
  a key without the route's scope is 403.
- Provider webhooks (`/sms/...`, `/telegram/...`): an unsigned request is 403.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from bot.cases.keys import SCOPES, create_key
from bot.config import Settings
from bot.handoff import auth
from bot.main import create_app
from tests.handoff.conftest import coordinator
from tests.handoff.test_console import Console, close_consoles
from tests.harness import LiveGateway

__all__ = ["close_consoles"]  # an autouse fixture: closes each test's HTTP clients

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Public on purpose. Everything else must be one of the protected kinds below.
PUBLIC = {
    ("GET", "/console/login"): "the console's sign-in form",
    ("POST", "/console/login"): "signing in (it has its own double-submit CSRF check)",
    ("GET", "/"): "the web chat page",
    ("GET", "/health"): "liveness",
    ("GET", "/ready"): "readiness",
}
# The public web chat: each session is its own bearer secret (tests/bot/test_gateway_web.py).
PUBLIC_PREFIXES = ("/api/web/",)
WEBHOOK_PREFIXES = ("/sms/", "/telegram/")  # signed by Twilio, or Telegram's secret header
SUPERVISOR_ONLY_AT_LEAST = {("GET", "/console/audit"), ("GET", "/console/api/feedback")}
SAMPLE = {"reference": "8899999/26"}


# -- the route table ------------------------------------------------------------------------


def routes_of(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) for every API route, including those in included routers."""
    contexts = getattr(routing, "iter_route_contexts", None)
    found = []
    if contexts is not None:
        pairs = [(c.path, c.original_route) for c in contexts(app.routes)]
    else:  # older FastAPI flattens included routers into app.routes
        pairs = [(getattr(r, "path", ""), r) for r in app.routes]
    for path, route in pairs:
        if isinstance(route, APIRoute):
            found.extend((method, path, route) for method in sorted(route.methods or ()))
    return found


def _app() -> FastAPI:
    # Only the route table is read: the lifespan (database, Rasa) never runs.
    return create_app(Settings(database_url="sqlite://", secret_key="route-table"))


ROUTES = routes_of(_app())


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency a route runs, however deeply nested."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from calls(dependency)


def scope_of(route: APIRoute) -> str | None:
    """The scope an agency route checks: the scope in its `_scope(...)` dependency."""
    for call in calls(route.dependant):
        for cell in getattr(call, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if isinstance(value, str) and value in SCOPES:
                return value
    return None


def is_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def is_agency(path: str) -> bool:
    return path.startswith("/api/") and not path.startswith(PUBLIC_PREFIXES)


def is_public(method: str, path: str) -> bool:
    return (method, path) in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def example(path: str) -> str:
    """A concrete URL for a route's path: each parameter filled with a harmless value."""
    return re.sub(r"\{([^}:]+)(?::[^}]+)?\}", lambda m: SAMPLE.get(m.group(1), "1"), path)


def ids(routes: list[tuple[str, str, APIRoute]]) -> list[str]:
    return [f"{method} {path}" for method, path, _ in routes]


CONSOLE = [r for r in ROUTES if is_console(r[1]) and not is_public(r[0], r[1])]
SUPERVISOR = [r for r in CONSOLE if auth.require_supervisor in set(calls(r[2].dependant))]
CONSOLE_CHANGES = [r for r in ROUTES if is_console(r[1]) and r[0] in STATE_CHANGING]
AGENCY = [r for r in ROUTES if is_agency(r[1])]
WEBHOOKS = [r for r in ROUTES if r[1].startswith(WEBHOOK_PREFIXES)]


def request(
    live: LiveGateway, method: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {} if method in STATE_CHANGING else None
    return live.client.request(
        method, live.url + example(path), json=body, headers=headers or {}, follow_redirects=False
    )


# -- the table itself -------------------------------------------------------------------------


def test_every_route_is_protected_or_on_the_public_list() -> None:
    unknown = [
        f"{method} {path}"
        for method, path, _ in ROUTES
        if not (
            is_public(method, path)
            or is_console(path)
            or is_agency(path)
            or path.startswith(WEBHOOK_PREFIXES)
        )
    ]
    assert not unknown, f"routes with no known protection: {unknown}"
    assert CONSOLE and AGENCY and WEBHOOKS
    assert {(m, p) for m, p, _ in SUPERVISOR} >= SUPERVISOR_ONLY_AT_LEAST


def test_the_live_gateway_serves_the_routes_checked_here(live_gateway: LiveGateway) -> None:
    assert ids(routes_of(live_gateway.app)) == ids(ROUTES)


@pytest.mark.parametrize(("method", "path", "route"), CONSOLE, ids=ids(CONSOLE))
def test_every_console_route_depends_on_a_signed_in_coordinator(
    method: str, path: str, route: APIRoute
) -> None:
    assert auth.current_coordinator in set(calls(route.dependant))
    if method in STATE_CHANGING:
        assert auth.check_csrf in set(calls(route.dependant))


# -- console ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "route"), CONSOLE, ids=ids(CONSOLE))
def test_every_console_route_refuses_a_stranger(
    live_gateway: LiveGateway, method: str, path: str, route: APIRoute
) -> None:
    # A cookie that was never issued is the same as none.
    for headers in ({}, {"Cookie": "waymark_console=made-up-token"}):
        response = request(live_gateway, method, path, headers)
        if path.startswith(auth.API_PREFIX):
            assert response.status_code == 401, response.text
            assert response.json() == {"detail": "Sign in to the console first."}
        else:
            assert response.status_code == 303, response.text
            assert response.headers["location"] == "/console/login"
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("method", "path", "route"), SUPERVISOR, ids=ids(SUPERVISOR))
def test_supervisor_routes_refuse_a_coordinator(
    live_gateway: LiveGateway, method: str, path: str, route: APIRoute
) -> None:
    console = Console.signed_in(live_gateway, coordinator(live_gateway))
    response = request(
        live_gateway,
        method,
        path,
        {**console.cookie_header(), "X-CSRF-Token": console.csrf or ""},
    )
    assert response.status_code == 403, response.text


@pytest.mark.parametrize(("method", "path", "route"), CONSOLE_CHANGES, ids=ids(CONSOLE_CHANGES))
def test_state_changing_console_routes_refuse_a_missing_csrf_token(
    live_gateway: LiveGateway, method: str, path: str, route: APIRoute
) -> None:
    # A supervisor, so the role never gets in the way of the check under test.
    console = Console.signed_in(live_gateway, coordinator(live_gateway, role="supervisor"))
    response = request(live_gateway, method, path, console.cookie_header())
    assert response.status_code == 403, response.text
    # The session still works: it was the missing token that was refused.
    assert console.get("/console/api/canned").status_code == 200


# -- agency API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(live_gateway: LiveGateway) -> dict[str, str]:
    """scope -> a key with every scope but that one; "only:<scope>" -> just that one."""
    made = {}
    with live_gateway.db() as session, session.begin():
        for scope in SCOPES:
            others = [s for s in SCOPES if s != scope]
            made[scope] = create_key(session, "route-auth", f"all but {scope}", others)
            made[f"only:{scope}"] = create_key(session, "route-auth", f"only {scope}", [scope])
    return made


@pytest.mark.parametrize(("method", "path", "route"), AGENCY, ids=ids(AGENCY))
def test_every_agency_route_refuses_a_missing_or_wrong_key(
    live_gateway: LiveGateway, method: str, path: str, route: APIRoute
) -> None:
    assert request(live_gateway, method, path).status_code == 401
    made_up = {"Authorization": "Bearer wm_not-a-real-key"}
    assert request(live_gateway, method, path, made_up).status_code == 401


@pytest.mark.parametrize(("method", "path", "route"), AGENCY, ids=ids(AGENCY))
def test_every_agency_route_refuses_a_key_without_its_scope(
    live_gateway: LiveGateway, keys: dict[str, str], method: str, path: str, route: APIRoute
) -> None:
    scope = scope_of(route)
    assert scope is not None, f"{method} {path} checks no scope"
    lacking = request(live_gateway, method, path, {"Authorization": f"Bearer {keys[scope]}"})
    assert lacking.status_code == 403, lacking.text
    # With the scope, the key gets past the check (to a 404 or 422 for these samples).
    allowed = request(
        live_gateway, method, path, {"Authorization": f"Bearer {keys[f'only:{scope}']}"}
    )
    assert allowed.status_code not in (401, 403), allowed.text


# -- provider webhooks ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "route"), WEBHOOKS, ids=ids(WEBHOOKS))
def test_every_webhook_refuses_an_unsigned_request(
    live_gateway: LiveGateway, method: str, path: str, route: APIRoute
) -> None:
    response = live_gateway.client.request(
        method, live_gateway.url + example(path), data={"From": "+447700900999", "Body": "hi"}
    )
    assert response.status_code == 403, response.text
