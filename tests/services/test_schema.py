"""Directory entries: a good one loads; every kind of bad field is named, with a plain fix."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.services import schema
from bot.services.schema import DirectoryError, FieldError, Service
from tests.services.builders import GOOD, TODAY, contact, period, raw


def errors_of(entry: Any) -> list[FieldError]:
    with pytest.raises(DirectoryError) as caught:
        schema.validate_entry(entry, today=TODAY)
    return caught.value.errors


def set_path(entry: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set "contacts.0.hours.1.opens" (or delete it, when value is ...)."""
    *parents, last = path.split(".")
    node: Any = entry
    for step in parents:
        node = node[int(step)] if step.isdigit() else node[step]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return entry


def test_a_good_entry_loads_with_its_values() -> None:
    service = schema.validate_entry(raw(), today=TODAY)
    assert service.id == "national-domestic-abuse-helpline"
    assert service.contacts[0].hours == "always"
    assert service.contacts[1].hours[1].closes == "16:30"
    assert service.coverage.boroughs == ()
    assert service.last_verified == date(2026, 11, 26)


def test_a_service_is_frozen_hashable_and_survives_json() -> None:
    service = schema.validate_entry(raw(), today=TODAY)
    with pytest.raises(ValueError):
        service.name = "Something else"  # type: ignore[misc]
    assert hash(service) == hash(schema.validate_entry(raw(), today=TODAY))
    # The database stores the JSON and reads it back through the same model.
    again = Service.model_validate(json.loads(service.model_dump_json()))
    assert again == service


def test_optional_fields_have_safe_defaults() -> None:
    entry = raw(contacts=[{"kind": "phone", "value": "0808 168 9111"}])
    for key in ("eligibility", "languages", "interpreters", "commissioned_by", "summary"):
        del entry[key]
    service = schema.validate_entry(entry, today=TODAY)
    assert service.contacts[0].hours is None  # unknown, so never claimed open
    assert service.contacts[0].bank_holidays is None
    assert service.eligibility.genders == "any"
    assert service.languages == ("English",)
    assert service.interpreters is False


def test_boroughs_are_the_canonical_names_from_the_nlu_lookup() -> None:
    assert len(schema.BOROUGHS) == 33
    assert "City of London" in schema.BOROUGHS
    assert {"Hackney", "Tower Hamlets", "Kingston upon Thames", "Richmond upon Thames"} <= set(
        schema.BOROUGHS
    )
    assert schema.borough_names()["lbth"] == "Tower Hamlets"


def test_a_borough_service() -> None:
    service = schema.validate_entry(
        raw(coverage={"area": "boroughs", "boroughs": ["Hackney", "City of London"]}), today=TODAY
    )
    assert service.coverage.boroughs == ("Hackney", "City of London")


# (path to change, new value or ... to delete, field reported, words in the message)
BAD_FIELDS = [
    ("id", "Bad Id", "id", "lower-case letters"),
    ("id", "ab", "id", "3 to 64"),
    ("id", ..., "id", "required"),
    ("name", "x" * 61, "name", "at most 60 characters"),
    ("name", "Men\u2019s Advice Line", "name", "plain characters"),
    ("name", "", "name", "can't be empty"),
    ("name", 123, "name", "use text"),
    ("organisation", "x" * 81, "organisation", "at most 80"),
    ("for_whom", "x" * 71, "for_whom", "at most 70"),
    ("for_whom", "two\nlines", "for_whom", "no line breaks"),
    ("types", [], "types", "at least one"),
    ("types", ["generl"], "types[0]", "use one of"),
    ("types", ["general", "general"], "types", "only once"),
    ("types", "general", "types", "a list"),
    ("crime_types", ["any", "fraud"], "crime_types", "any on its own"),
    ("crime_types", ["shoplifting"], "crime_types[0]", "'fraud'"),
    ("crime_types", [], "crime_types", "at least one"),
    ("eligibility.age_min", -1, "eligibility.age_min", "from 0 to 120"),
    ("eligibility.age_max", 121, "eligibility.age_max", "from 0 to 120"),
    ("eligibility.age_min", "16", "eligibility.age_min", "whole number"),
    ("eligibility.genders", "female", "eligibility.genders", "'women'"),
    ("eligibility.specialist_for", ["kids"], "eligibility.specialist_for[0]", "'children'"),
    ("eligibility.criteria", "x" * 121, "eligibility.criteria", "at most 120"),
    ("eligibility.colour", "red", "eligibility.colour", "not a field we know"),
    ("coverage.area", "england", "coverage.area", "'national'"),
    ("coverage.boroughs", ["Hackney"], "coverage.boroughs", "leave this empty"),
    ("coverage", {"area": "boroughs", "boroughs": []}, "coverage.boroughs", "at least one borough"),
    (
        "coverage",
        {"area": "boroughs", "boroughs": ["hackney"]},
        "coverage.boroughs[0]",
        "use the official name: Hackney",
    ),
    (
        "coverage",
        {"area": "boroughs", "boroughs": ["Narnia"]},
        "coverage.boroughs[0]",
        "not a London borough",
    ),
    ("coverage", ..., "coverage", "required"),
    ("contacts", [], "contacts", "at least one"),
    ("contacts.0.kind", "fax", "contacts[0].kind", "'phone'"),
    ("contacts.0.value", "+44 808 2000 247", "contacts[0].value", "digits and spaces"),
    ("contacts.0.value", "12", "contacts[0].value", "digits and spaces"),
    ("contacts.0.value", "1" * 21, "contacts[0].value", "digits and spaces"),
    ("contacts.0.value", 8082000247, "contacts[0].value", "in quotes"),
    ("contacts.0.note", "x" * 81, "contacts[0].note", "at most 80"),
    ("contacts.0.hours", "sometimes", "contacts[0].hours", "always (24/7), null"),
    ("contacts.0.hours", 24, "contacts[0].hours", "always (24/7), null"),
    ("contacts.0.bank_holidays", "maybe", "contacts[0].bank_holidays", "'closed' or 'usual'"),
    ("contacts.0.extra", "x", "contacts[0].extra", "not a field we know"),
    ("contacts.1.value", "https://nationaldahelpline.org.uk", "contacts[1].value", "leave out"),
    ("contacts.1.value", "not a web address", "contacts[1].value", "web address"),
    ("contacts.1.value", "localhost", "contacts[1].value", "web address"),
    ("contacts.1.hours.1.opens", "9:30", "contacts[1].hours[1].opens", "use 24-hour HH:MM"),
    ("contacts.1.hours.1.opens", "24:00", "contacts[1].hours[1].opens", "like 09:30"),
    ("contacts.1.hours.1.opens", 570, "contacts[1].hours[1].opens", "in quotes"),
    ("contacts.1.hours.1.closes", "24:30", "contacts[1].hours[1].closes", '"24:00"'),
    ("contacts.1.hours.1.closes", "10:00", "contacts[1].hours[1].closes", "must differ"),
    ("contacts.1.hours.0.days", [], "contacts[1].hours[0].days", "at least one"),
    ("contacts.1.hours.0.days", ["monday"], "contacts[1].hours[0].days[0]", "'mon'"),
    ("contacts.1.hours.0.days", ["mon", "mon"], "contacts[1].hours[0].days", "only once"),
    ("contacts.1.hours.0.opens", ..., "contacts[1].hours[0].opens", "required"),
    ("free", "yes", "free", "true or false (or null"),
    ("self_referral", None, "self_referral", "true or false"),
    ("referrals", ..., "referrals", "required"),
    ("police_report_needed", 1, "police_report_needed", "true or false"),
    ("interpreters", "no", "interpreters", "true or false"),
    ("languages", ["polish"], "languages[0]", "English name of a language"),
    ("languages", [], "languages", "at least one"),
    ("commissioned_by", "x" * 81, "commissioned_by", "at most 80"),
    ("summary", "x" * 141, "summary", "at most 140"),
    ("sources", [], "sources", "at least one source"),
    ("sources", ..., "sources", "at least one source"),
    ("sources", ["ftp://example.org/x"], "sources[0]", "starting https://"),
    ("sources", ["https://a.org/x", "https://a.org/x"], "sources", "only once"),
    ("last_verified", ..., "last_verified", "date its details were last checked"),
    ("last_verified", date(2026, 11, 27), "last_verified", "can't be in the future"),
    ("last_verified", "26/11/2026", "last_verified", "a date like 2026-11-26"),
    ("website", "x", "website", "not a field we know"),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), BAD_FIELDS, ids=lambda v: str(v)[:30])
def test_each_bad_field_is_named_with_a_plain_message(
    path: str, value: Any, field: str, words: str
) -> None:
    errors = errors_of(set_path(raw(), path, value))
    assert [(e.field, e.service) for e in errors] == [(field, GOOD["id"] if path != "id" else None)]
    assert words in errors[0].message, errors[0].message


def test_a_service_without_a_source_or_a_date_fails() -> None:
    entry = raw()
    del entry["sources"], entry["last_verified"]
    fields = {e.field for e in errors_of(entry)}
    assert fields == {"sources", "last_verified"}


def test_every_bad_field_is_reported_at_once() -> None:
    entry = raw(
        id="Bad Id",
        types=["generl"],
        free="yes",
        sources=[],
        coverage={"area": "london", "boroughs": ["Narnia"]},
        contacts=[
            contact("phone", "+44", hours=[period(["mon"], "9", "17:00")]),
            contact("web", "https://x.org"),
            contact("email", "nobody"),
        ],
    )
    fields = [e.field for e in errors_of(entry)]
    assert fields == [
        "id",
        "types[0]",
        "coverage.boroughs[0]",
        "contacts[0].value",
        "contacts[0].hours[0].opens",
        "contacts[1].value",
        "contacts[2].value",
        "free",
        "sources",
    ]


def test_the_example_path_from_the_spec() -> None:
    entry = set_path(raw(), "contacts.1.hours.1.opens", "half nine")
    (error,) = errors_of(entry)
    assert str(error) == (
        "national-domestic-abuse-helpline: contacts[1].hours[1].opens: "
        "use 24-hour HH:MM, like 09:30"
    )


def test_huge_input_is_never_echoed_back() -> None:
    huge = "y" * 100_000
    entry = raw(
        name=huge,
        coverage={"area": "boroughs", "boroughs": [huge]},
        languages=[huge],
        sources=[huge],
        **{huge: 1},
    )
    with pytest.raises(DirectoryError) as caught:
        schema.validate_entry(entry, today=TODAY)
    assert len(caught.value.errors) == 5
    for problem in caught.value.errors:
        assert len(problem.field) < 60 and len(problem.message) < 200, problem
    assert len(str(caught.value)) < 2000


def test_an_entry_that_is_not_a_mapping() -> None:
    (error,) = errors_of(["not", "a", "service"])
    assert (error.service, error.field) == (None, "entry")


def test_the_future_is_london_today_by_default() -> None:
    far = raw(last_verified=date(2999, 1, 1))
    with pytest.raises(DirectoryError):
        schema.validate_entry(far)
    assert schema.validate_entry(raw()).last_verified == date(2026, 11, 26)


def test_duplicate_ids_are_an_error() -> None:
    other = raw(name="Another name")
    with pytest.raises(DirectoryError) as caught:
        schema.validate_entries([raw(), other], today=TODAY)
    (error,) = caught.value.errors
    assert (error.service, error.field) == ("national-domestic-abuse-helpline", "id")
    assert "entries 1 and 2" in error.message


def test_entries_are_labelled_by_id_or_position() -> None:
    nameless = raw()
    del nameless["id"]
    with pytest.raises(DirectoryError) as caught:
        schema.validate_entries([raw(), nameless, raw(id="third-one", free="yes"), 7], today=TODAY)
    assert [(e.service, e.field) for e in caught.value.errors] == [
        ("#2", "id"),
        ("third-one", "free"),
        ("#4", "entry"),
    ]


def test_validate_entries_returns_every_service_in_order() -> None:
    services = schema.validate_entries([raw(), raw(id="second-one")], today=TODAY)
    assert [s.id for s in services] == ["national-domestic-abuse-helpline", "second-one"]


def test_the_message_lists_at_most_20_problems() -> None:
    errors = [FieldError(f"s{n}", "name", "bad") for n in range(25)]
    text = str(DirectoryError(errors))
    assert text.startswith("25 problem(s)")
    assert "s19: name: bad" in text and "s20" not in text and "and 5 more" in text


# -- files ---------------------------------------------------------------------------


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "directory.yml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_load_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"version": 1, "services": [raw(), raw(id="second-one")]})
    assert [s.id for s in schema.load_file(path, today=TODAY)] == [
        "national-domestic-abuse-helpline",
        "second-one",
    ]


def test_unquoted_times_in_yaml_are_explained(tmp_path: Path) -> None:
    text = yaml.safe_dump({"version": 1, "services": [raw()]}, sort_keys=False)
    text = text.replace("opens: '10:00'", "opens: 10:00", 1)
    with pytest.raises(DirectoryError) as caught:
        schema.load_file(write(tmp_path, text), today=TODAY)
    (error,) = caught.value.errors
    assert error.field == "contacts[1].hours[0].opens"
    assert "in quotes" in error.message


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ("services: [oops", [(None, "file")]),
        ("- just a list", [(None, "file")]),
        ({"services": []}, [(None, "version")]),
        ({"version": 1, "services": "none"}, [(None, "services")]),
        ({"version": 1, "services": [], "extra": 1}, [(None, "extra")]),
        (
            {"version": 2, "services": [{**GOOD, "free": "yes"}]},
            [(None, "version"), ("national-domestic-abuse-helpline", "free")],
        ),
    ],
)
def test_bad_files(tmp_path: Path, data: Any, fields: list[tuple[str | None, str]]) -> None:
    with pytest.raises(DirectoryError) as caught:
        schema.load_file(write(tmp_path, data), today=TODAY)
    assert [(e.service, e.field) for e in caught.value.errors] == fields


def test_yaml_errors_give_the_line(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError) as caught:
        schema.load_file(write(tmp_path, "version: 1\nservices:\n  - id: [oops\n"), today=TODAY)
    assert "line" in caught.value.errors[0].message


# -- staleness -----------------------------------------------------------------------


def test_stale_lists_entries_not_verified_in_6_months_oldest_first() -> None:
    def verified(service_id: str, day: date) -> Service:
        return schema.validate_entry(raw(id=service_id, last_verified=day), today=TODAY)

    services = [
        verified("fresh", date(2026, 11, 1)),
        verified("edge", date(2026, 5, 26)),  # exactly 6 months: not yet stale
        verified("old", date(2026, 5, 25)),
        verified("older", date(2025, 1, 1)),
    ]
    stale = schema.stale(services, today=TODAY)
    assert [s.id for s in stale] == ["older", "old"]
    assert [s.id for s in schema.stale(services, today=TODAY, months=1)] == [
        "older",
        "old",
        "edge",
    ]
