"""The directory API: agencies add, correct and retire entries with a key that has the
directory scopes; every bad field is named; matching sees a change at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import db
from bot.cases import keys
from bot.services import directory as store
from bot.services.models import ServiceRow
from tests.harness import LiveGateway, database, gateway_settings, live_gateway_for
from tests.signposting.conftest import entry, write_directory


@dataclass
class Api:
    live: LiveGateway
    sessions: sessionmaker[Session]
    keys: dict[str, str]

    def call(
        self, method: str, path: str, key: str | None = "writer", **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return self.live.client.request(method, self.live.url + path, headers=headers, **kwargs)

    def row(self, service_id: str) -> ServiceRow | None:
        with self.sessions() as session:
            return session.get(ServiceRow, service_id)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with database(request.param, tmp_path_factory.mktemp("directory")) as url:
        settings = gateway_settings(url, "http://127.0.0.1:1", "token")
        with live_gateway_for(settings) as live:
            engine = db.create_sync_engine(url)
            sessions = sessionmaker(engine, expire_on_commit=False)
            with sessions() as session:
                made = {
                    "writer": keys.create_key(
                        session, "met", "Directory", ["directory:read", "directory:write"]
                    ),
                    "reader": keys.create_key(session, "met", "Reader", ["directory:read"]),
                    "cases": keys.create_key(session, "met", "Cases", ["cases:read"]),
                }
                session.commit()
            try:
                yield Api(live, sessions, made)
            finally:
                engine.dispose()


def test_the_directory_file_is_loaded_at_start_up(api: Api) -> None:
    listed = api.call("GET", "/api/services", key="reader")
    assert listed.status_code == 200
    ids = {s["id"] for s in listed.json()["services"]}
    assert len(ids) >= 15
    assert api.live.gateway.signposts.directory.get(next(iter(ids))) is not None


def test_an_agency_adds_corrects_and_retires_an_entry(api: Api) -> None:
    body = entry(id="borough-advice-line", name="Borough Advice Line")
    created = api.call("PUT", "/api/services/borough-advice-line", json=body)
    assert created.status_code == 201, created.text
    assert created.json() == {"id": "borough-advice-line", "added": True, "changed": True}
    assert api.live.gateway.signposts.directory.get("borough-advice-line") is not None

    again = api.call("PUT", "/api/services/borough-advice-line", json=body)
    assert (again.status_code, again.json()["changed"]) == (200, False)

    fixed = api.call(
        "PUT", "/api/services/borough-advice-line", json={**body, "name": "Borough Help Line"}
    )
    assert (fixed.status_code, fixed.json()["changed"]) == (200, True)
    shown = api.call("GET", "/api/services/borough-advice-line", key="reader").json()
    assert shown["entry"]["name"] == "Borough Help Line"
    assert shown["origin"] == "api:met"
    found = api.live.gateway.signposts.directory.get("borough-advice-line")
    assert found is not None and found.name == "Borough Help Line"

    gone = api.call("DELETE", "/api/services/borough-advice-line")
    assert gone.status_code == 200
    assert api.live.gateway.signposts.directory.get("borough-advice-line") is None
    assert api.call("GET", "/api/services/borough-advice-line", key="reader").status_code == 404
    assert api.call("DELETE", "/api/services/borough-advice-line").status_code == 404
    row = api.row("borough-advice-line")
    assert row is not None and not row.active  # kept for the referrals that point at it


def test_every_bad_field_is_named_and_nothing_is_written(api: Api) -> None:
    body = entry(
        id="bad-entry",
        sources=[],
        last_verified="2099-01-01",
        coverage={"area": "boroughs", "boroughs": ["Atlantis"]},
        contacts=[{**entry()["contacts"][0], "kind": "pigeon"}],
    )
    refused = api.call("PUT", "/api/services/bad-entry", json=body)
    assert refused.status_code == 422
    fields = {e["msg"].split(":", 1)[0] for e in refused.json()["errors"]}
    assert {"sources", "last_verified", "coverage.boroughs[0]", "contacts[0].kind"} <= fields
    assert api.row("bad-entry") is None


def test_the_id_in_the_body_must_match_the_address(api: Api) -> None:
    refused = api.call("PUT", "/api/services/one-id", json=entry(id="another-id"))
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("id:")


def test_keys_need_the_directory_scopes(api: Api) -> None:
    body = entry(id="scoped-entry")
    assert api.call("PUT", "/api/services/scoped-entry", key=None, json=body).status_code == 401
    assert api.call("PUT", "/api/services/scoped-entry", key="reader", json=body).status_code == 403
    assert api.call("GET", "/api/services", key="cases").status_code == 403
    assert api.row("scoped-entry") is None


def test_the_staleness_report(api: Api) -> None:
    old = entry(id="old-entry", name="Old Entry", last_verified="2025-02-01")
    assert api.call("PUT", "/api/services/old-entry", json=old).status_code == 201
    report = api.call("GET", "/api/services/stale", key="reader")
    assert report.status_code == 200
    assert report.json()["months"] == 6
    assert "old-entry" in {s["id"] for s in report.json()["services"]}
    assert api.call("GET", "/api/services/stale?months=0", key="reader").status_code == 422
    with api.sessions() as session:
        assert (
            session.scalar(select(ServiceRow.origin).where(ServiceRow.id == "old-entry"))
            == "api:met"
        )


def test_a_bad_file_at_start_up_keeps_the_last_good_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    settings = gateway_settings(url, "http://127.0.0.1:1", "token")
    with live_gateway_for(settings) as live:
        loaded = len(live.gateway.signposts.directory)
    assert loaded >= 15
    bad = write_directory(tmp_path / "bad.yml", entry(sources=[]))
    monkeypatch.setattr(store, "DIRECTORY_FILE", bad)
    with live_gateway_for(settings) as live:
        assert len(live.gateway.signposts.directory) == loaded
    assert "The services directory file was not loaded" in caplog.text
