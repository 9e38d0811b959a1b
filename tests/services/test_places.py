"""Borough names and postcode districts to a London borough."""

from __future__ import annotations

import re
from datetime import date

import pytest
import yaml

from bot.services import places
from bot.services.places import Places
from bot.services.schema import BOROUGHS

FIXTURE = Places(
    {
        "E8": ["Hackney"],
        "N1": ["Islington", "Hackney", "Camden"],
        "SE13": ["Lewisham"],
        "EC1A": ["City of London", "Islington"],
        "EC1M": ["Islington", "City of London"],
        "EC1V": ["Islington", "Hackney"],
        "SW1": ["Westminster"],  # listed only as a district here
    }
)


@pytest.mark.parametrize(
    ("text", "district"),
    [
        ("E8", "E8"),
        ("e8", "E8"),
        (" e8 ", "E8"),
        ("E8 1AB", "E8"),
        ("e8 1ab", "E8"),
        ("E81AB", "E8"),
        ("EC1A 1BB", "EC1A"),
        ("ec1a1bb", "EC1A"),
        ("SW1A", "SW1A"),
        ("SW1A 1AA", "SW1A"),
        ("W1D 3QU", "W1D"),
        ("SE13.", "SE13"),
        ("LS1 4AP", "LS1"),  # shaped like one; not in London
        ("Hackney", None),
        ("E8 1", None),
        ("", None),
        ("1AB", None),
    ],
)
def test_district_of(text: str, district: str | None) -> None:
    assert places.district_of(text) == district


@pytest.mark.parametrize(
    ("text", "borough"),
    [
        ("E8", "Hackney"),
        ("e8 1ab", "Hackney"),
        ("N1", "Islington"),  # crosses 3 boroughs: the main one
        ("se13 6ab", "Lewisham"),
        ("EC1A 1BB", "City of London"),
        ("EC1A", "City of London"),
        ("EC1", "Islington"),  # listed only as sub-districts: the commonest main borough
        ("SW1A 1AA", "Westminster"),  # a sub-district of a listed district
        ("SW1", "Westminster"),
        ("E9", None),  # not in this table
        ("LS1 4AP", None),
    ],
)
def test_postcodes_to_boroughs(text: str, borough: str | None) -> None:
    assert FIXTURE.borough_for(text) == borough


@pytest.mark.parametrize(
    ("text", "borough"),
    [
        ("Hackney", "Hackney"),
        ("hackney", "Hackney"),
        ("HACKNEY", "Hackney"),
        ("hackny", "Hackney"),  # a misspelling the NLU lookup also knows
        ("tower hamlets", "Tower Hamlets"),
        ("LBTH", "Tower Hamlets"),
        ("the city", "City of London"),
        ("Square Mile", "City of London"),
        ("hammersmith", "Hammersmith and Fulham"),
        ("kingston", "Kingston upon Thames"),
        ("Royal Borough of Greenwich", "Greenwich"),
        ("London Borough of Lewisham", "Lewisham"),
        ("Croydon Council", "Croydon"),
        ("lewisham.", "Lewisham"),
        ("  Barking   and Dagenham ", "Barking and Dagenham"),
    ],
)
def test_borough_names_and_synonyms(text: str, borough: str) -> None:
    assert FIXTURE.borough_for(text) == borough


@pytest.mark.parametrize("text", ["Leeds", "London", "Narnia", "", "   ", "E8 and more", "city"])
def test_unknown_places(text: str) -> None:
    assert FIXTURE.borough_for(text) is None


def test_a_table_with_names_that_are_not_canonical_is_refused() -> None:
    with pytest.raises(ValueError, match="hackney"):
        Places({"E8": ["hackney"]})
    with pytest.raises(ValueError, match="E8"):
        Places({"E8": []})


# -- the real table: content/services/postcodes.yml ------------------------------------

DATA = yaml.safe_load(places.POSTCODES_FILE.read_text(encoding="utf-8"))
AREAS = ("E", "EC", "N", "NW", "SE", "SW", "W", "WC")
OUTER = ("BR", "CR", "DA", "EN", "HA", "IG", "KT", "RM", "SM", "TW", "UB")


def test_the_real_table_has_a_source_a_date_and_canonical_names() -> None:
    assert re.match(r"https?://", DATA["source"])
    assert DATA["last_verified"] <= date.today()
    table = places.default()
    assert len(table.districts) > 250
    for district, boroughs in table.districts.items():
        assert places.district_of(district) == district, district
        assert set(boroughs) <= set(BOROUGHS)
        assert len(set(boroughs)) == len(boroughs), district


def test_the_real_table_covers_every_london_area_and_borough() -> None:
    districts = places.default().districts
    for area in AREAS + OUTER:
        assert any(re.fullmatch(rf"{area}\d.*", d) for d in districts), area
    main_boroughs = {boroughs[0] for boroughs in districts.values()}
    assert main_boroughs == set(BOROUGHS)


@pytest.mark.parametrize(
    ("text", "borough"),
    [
        ("E8", "Hackney"),
        ("e8 3ql", "Hackney"),
        ("E1 6AN", "Tower Hamlets"),
        ("E14", "Tower Hamlets"),
        ("SE13", "Lewisham"),
        ("CR0 1AB", "Croydon"),
        ("EC1A 1BB", "City of London"),
        ("SW1A 1AA", "Westminster"),
        ("W1D", "Westminster"),
        ("N16", "Hackney"),
        ("BR1", "Bromley"),
        ("KT1", "Kingston upon Thames"),
        ("Hackney", "Hackney"),
        ("lewisham", "Lewisham"),
        ("LS1 4AP", None),  # Leeds
        ("M1", None),  # Manchester
        ("Leeds", None),
    ],
)
def test_the_real_table(text: str, borough: str | None) -> None:
    assert places.borough_for(text) == borough
