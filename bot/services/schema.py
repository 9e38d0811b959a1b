"""A support service in the directory (`content/services/directory.yml`), validated.

The file format is described in docs/signposting.md. Validation collects every problem,
not just the first, as a `FieldError` with a path such as `contacts[0].hours[1].opens`
and a plain message, so whoever edits the file (or calls the API) can fix it in one go.
Messages never repeat long input back: a value is quoted only when it is short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from dateutil.relativedelta import relativedelta
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from bot.cases import vocabulary
from bot.cases.working_days import LONDON

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY_FILE = ROOT / "content" / "services" / "directory.yml"
BOROUGHS_FILE = ROOT / "data" / "nlu" / "lookups" / "boroughs.yml"

ServiceType = Literal[
    "general",
    "isva",
    "idva",
    "domestic_abuse",
    "sexual_violence",
    "stalking",
    "hate_crime",
    "fraud",
    "children_young_people",
    "male_victims",
    "lgbt",
    "black_minoritised_women",
    "forced_marriage_honour",
    "mental_health_crisis",
    "court_witness",
    "emergency",
    "reporting",
]
# The contract's crime types, as the case store keeps them ("other" is a person's answer,
# never what a service serves).
CrimeType = Literal[tuple(c for c in vocabulary.CRIME_TYPES if c != "other")]  # type: ignore[valid-type]
Group = Literal[
    "children",
    "young_people",
    "men",
    "women",
    "lgbt",
    "black_minoritised_women",
    "deaf",
    "older_people",
]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ContactKind = Literal["phone", "text", "web", "chat", "email"]

SERVICE_TYPES: tuple[str, ...] = get_args(ServiceType)
CRIME_TYPES: tuple[str, ...] = get_args(CrimeType)
GROUPS: tuple[str, ...] = get_args(Group)
DAYS: tuple[str, ...] = get_args(Day)
CONTACT_KINDS: tuple[str, ...] = get_args(ContactKind)

# Text shown in an SMS must stay in the GSM-7 basic set: one curly quote or emoji turns
# the whole message into UCS-2 and halves what fits (docs/reference/writing-for-victims.md).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

_ID = re.compile(r"[a-z0-9-]{3,64}")
_TIME = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")
_DIALLED = re.compile(r"[0-9 ]+")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_WEB = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.[a-z]{{2,}}(?:/\S*)?", re.IGNORECASE)
_EMAIL = re.compile(rf"[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})*\.[a-z]{{2,}}", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s/]+\.[^\s/]+\S*")
_LANGUAGE = re.compile(r"[A-Z][A-Za-z'-]*(?: [A-Za-z][A-Za-z'-]*){0,3}")
_QUOTE_AT_MOST = 40  # characters of a bad value repeated in a message


@dataclass(frozen=True)
class FieldError:
    """One problem. `service` is the entry's id, or `#N` (its position, from 1) when it
    has no usable id, or None for a problem with the whole file."""

    service: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.service}: " if self.service else ""
        return f"{where}{self.field}: {self.message}"


class DirectoryError(ValueError):
    """Every problem found, not just the first."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        shown = "\n".join(f"- {e}" for e in self.errors[:20])
        more = f"\n- and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} problem(s) in the services directory:\n{shown}{more}")


def _problem(message: str) -> PydanticCustomError:
    # "waymark" marks messages written here, passed through as they are.
    return PydanticCustomError("waymark", message)


def quoted(value: object) -> str:
    """A value for a message, cut short so huge input is never echoed back."""
    text = str(value)
    if len(text) > _QUOTE_AT_MOST:
        text = text[: _QUOTE_AT_MOST - 3] + "..."
    return repr(text)


# -- boroughs ----------------------------------------------------------------------------


@cache
def borough_names() -> dict[str, str]:
    """Every borough name and synonym in lower case -> its canonical name."""
    data = yaml.safe_load(BOROUGHS_FILE.read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for block in data.get("nlu", []):
        canonical = block.get("synonym")
        if not canonical:
            continue
        names[canonical.lower()] = canonical
        for line in str(block.get("examples", "")).splitlines():
            example = line.strip().removeprefix("- ").strip()
            if example:
                names[example.lower()] = canonical
    return names


# The 32 boroughs and the City of London, as the NLU's synonyms name them.
BOROUGHS: tuple[str, ...] = tuple(sorted(set(borough_names().values())))


def _canonical_borough(name: str) -> str:
    if name in BOROUGHS:
        return name
    official = borough_names().get(name.strip().lower())
    if official:
        raise _problem(f"use the official name: {official}")
    raise _problem(f"{quoted(name)} is not a London borough; use a name like Tower Hamlets")


# -- field types -------------------------------------------------------------------------


def _sms_safe(text: str) -> str:
    odd = sorted({c for c in text if c not in GSM7_BASIC})
    if odd:
        shown = " ".join(repr(c) for c in odd[:5])
        raise _problem(
            f"use plain characters only (no line breaks, curly quotes or emoji): {shown}"
        )
    return text


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise _problem(f"list {quoted(value)} only once")
        seen.add(value)
    return values


def _time_text(value: Any) -> Any:
    # Unquoted, YAML reads 09:30 as a number of minutes (base 60), so say why it failed.
    if isinstance(value, int) and not isinstance(value, bool):
        raise _problem('put the time in quotes, like "09:30"')
    return value


def _checked_time(value: str, *, closing: bool) -> str:
    if _TIME.fullmatch(value) or (closing and value == "24:00"):
        return value
    extra = ' (or "24:00" for midnight)' if closing else ""
    raise _problem(f"use 24-hour HH:MM, like 09:30{extra}")


def minutes(clock: str) -> int:
    """Minutes since midnight of "HH:MM" ("24:00" is 1440)."""
    return int(clock[:2]) * 60 + int(clock[3:])


_PLAIN = AfterValidator(_sms_safe)
Text60 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), _PLAIN
]
Text70 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=70), _PLAIN
]
Text80 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80), _PLAIN
]
Text120 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), _PLAIN
]
Text140 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140), _PLAIN
]
Borough = Annotated[str, AfterValidator(_canonical_borough)]
Clock = Annotated[str, BeforeValidator(_time_text)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class Period(_Model):
    days: Annotated[tuple[Day, ...], Field(min_length=1), AfterValidator(_unique)]
    opens: Clock
    closes: Clock  # before `opens`: runs past midnight into the next day

    @field_validator("opens")
    @classmethod
    def _opens(cls, value: str) -> str:
        return _checked_time(value, closing=False)

    @field_validator("closes")
    @classmethod
    def _closes(cls, value: str, info: ValidationInfo) -> str:
        _checked_time(value, closing=True)
        if info.data.get("opens") == value:
            raise _problem("must differ from opens; for a whole day use 00:00 to 24:00")
        return value


def _hours_kind(value: Any) -> str | None:
    if value == "always":
        return "always"
    if isinstance(value, list | tuple):
        return "periods"
    return None


Hours = Annotated[
    Annotated[Literal["always"], Tag("always")] | Annotated[tuple[Period, ...], Tag("periods")],
    Discriminator(
        _hours_kind,
        custom_error_type="waymark",
        custom_error_message="use always (24/7), null (not known) or a list of opening times",
    ),
]


class Contact(_Model):
    kind: ContactKind
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    note: Text80 | None = None
    hours: Hours | None = None  # None: not known, so never said to be open
    bank_holidays: Literal["closed", "usual"] | None = None  # None: not known

    @field_validator("value")
    @classmethod
    def _value_fits_kind(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind in ("phone", "text"):
            digits = sum(c.isdigit() for c in value)
            if not _DIALLED.fullmatch(value) or not 3 <= digits <= 20:
                raise _problem("use digits and spaces as people dial them, like 0808 168 9111")
        elif kind in ("web", "chat"):
            if _SCHEME.match(value):
                raise _problem("leave out https:// and write it like victimsupport.org.uk")
            if not _WEB.fullmatch(value):
                raise _problem("use a web address like victimsupport.org.uk")
        elif kind == "email" and not _EMAIL.fullmatch(value):
            raise _problem("use an email address like help@example.org.uk")
        return value


class Eligibility(_Model):
    age_min: Annotated[StrictInt, Field(ge=0, le=120)] | None = None
    age_max: Annotated[StrictInt, Field(ge=0, le=120)] | None = None  # inclusive
    genders: Literal["any", "women", "men"] = "any"
    specialist_for: Annotated[tuple[Group, ...], AfterValidator(_unique)] = ()
    criteria: Text120 | None = None

    @field_validator("age_max")
    @classmethod
    def _range(cls, value: int | None, info: ValidationInfo) -> int | None:
        age_min = info.data.get("age_min")
        if value is not None and age_min is not None and value < age_min:
            raise _problem(f"must be at least age_min ({age_min})")
        return value


class Coverage(_Model):
    area: Literal["national", "london", "boroughs"]
    boroughs: Annotated[tuple[Borough, ...], AfterValidator(_unique)] = ()

    @field_validator("boroughs")
    @classmethod
    def _fits_area(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        area = info.data.get("area")
        if area == "boroughs" and not value:
            raise _problem("list at least one borough when area is boroughs")
        if area in ("national", "london") and value:
            raise _problem(f"leave this empty when area is {area}, or set area to boroughs")
        return value


def _crime_types(values: tuple[str, ...]) -> tuple[str, ...]:
    if "any" in values and len(values) > 1:
        raise _problem("use any on its own, or list the crime types")
    return _unique(values)


def _language(name: str) -> str:
    if not _LANGUAGE.fullmatch(name):
        raise _problem(f"use the English name of a language, like Polish, not {quoted(name)}")
    return name


def _source(url: str) -> str:
    if len(url) > 500 or not _URL.fullmatch(url):
        raise _problem(f"use a full web address starting https://, not {quoted(url)}")
    return url


class Service(_Model):
    id: str
    name: Text60
    organisation: Text80
    types: Annotated[tuple[ServiceType, ...], Field(min_length=1), AfterValidator(_unique)]
    crime_types: Annotated[
        tuple[Literal[CrimeType, "any"], ...], Field(min_length=1), AfterValidator(_crime_types)
    ]
    for_whom: Text70  # completes "for ...", e.g. "anyone affected by domestic abuse"
    eligibility: Eligibility = Eligibility()
    coverage: Coverage
    contacts: Annotated[tuple[Contact, ...], Field(min_length=1)]
    free: StrictBool | None  # None: not known, so "free" is never said
    self_referral: StrictBool
    referrals: StrictBool  # Waymark's coordinators can make a warm referral to it
    police_report_needed: StrictBool
    languages: Annotated[
        tuple[Annotated[str, AfterValidator(_language)], ...],
        Field(min_length=1),
        AfterValidator(_unique),
    ] = ("English",)
    interpreters: StrictBool = False
    commissioned_by: Text80 | None = None
    summary: Text140 | None = None
    sources: Annotated[
        tuple[Annotated[str, AfterValidator(_source)], ...],
        Field(min_length=1),
        AfterValidator(_unique),
    ]
    last_verified: date

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise _problem(
                "use 3 to 64 lower-case letters, digits and hyphens, like victim-support"
            )
        return value

    @field_validator("last_verified", mode="before")
    @classmethod
    def _a_date(cls, value: Any) -> Any:
        # A date and time is a different claim from "checked on this day".
        if isinstance(value, datetime):
            raise _problem("use a date like 2026-11-26")
        return value

    @field_validator("last_verified")
    @classmethod
    def _not_future(cls, value: date, info: ValidationInfo) -> date:
        today = (info.context or {}).get("today") or datetime.now(LONDON).date()
        if value > today:
            raise _problem("can't be in the future: use the day the details were last checked")
        return value


# -- messages ----------------------------------------------------------------------------

_REQUIRED = {
    "sources": "every service needs at least one source: the web page its details come from",
    "last_verified": "every service needs the date its details were last checked, like 2026-11-26",
}


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for i, step in enumerate(loc):
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif i > 0 and loc[i - 1] == "hours" and step in ("always", "periods"):
            continue  # the tag pydantic adds for the kind of `hours`
        else:
            name = step if len(step) <= _QUOTE_AT_MOST else step[: _QUOTE_AT_MOST - 3] + "..."
            parts.append(f".{name}" if parts else name)
    return "".join(parts) or "entry"


def _message(error: ErrorDetails) -> str:
    kind, ctx, loc = error["type"], error.get("ctx") or {}, error["loc"]
    field = loc[-1] if loc else ""
    if kind == "waymark":
        return error["msg"]
    if kind == "missing":
        return (
            _REQUIRED.get(str(field), "this is required") if len(loc) == 1 else "this is required"
        )
    if kind == "extra_forbidden":
        return "not a field we know: check the spelling, or remove it"
    if kind == "literal_error":
        return f"use one of {ctx.get('expected', 'the listed values')}"
    if kind == "string_type":
        return "use text (in quotes if it looks like a number)"
    if kind == "string_too_short":
        return "can't be empty"
    if kind == "string_too_long":
        return f"use at most {ctx.get('max_length')} characters"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "use a whole number"
    if kind in ("greater_than_equal", "less_than_equal"):
        return "use an age from 0 to 120"
    if kind in ("bool_type", "bool_parsing"):
        return "use true or false" + (" (or null if not known)" if field == "free" else "")
    if kind in ("tuple_type", "list_type"):
        return "use a list, like [a, b]"
    if kind == "too_short":
        return _REQUIRED.get(str(field), "list at least one")
    if kind.startswith("date"):
        return "use a date like 2026-11-26"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "use a set of fields (key: value)"
    return "this value is not valid"


def _errors(error: ValidationError, service: str | None) -> list[FieldError]:
    details = error.errors()
    # pydantic counts only the items that passed towards a list's minimum length, so a list
    # whose every item is bad is also "too short": say only what is wrong with the items.
    item_errors = {e["loc"][:i] for e in details for i in range(1, len(e["loc"]))}
    return [
        FieldError(service, _path(e["loc"]), _message(e))
        for e in details
        if not (e["type"] == "too_short" and e["loc"] in item_errors)
    ]


def _label(raw: Any, index: int | None) -> str | None:
    service_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(service_id, str) and _ID.fullmatch(service_id):
        return service_id
    return None if index is None else f"#{index + 1}"


def _validate(raw: Any, index: int | None, today: date | None) -> Service | list[FieldError]:
    label = _label(raw, index)
    if not isinstance(raw, dict):
        return [FieldError(label, "entry", "each service must be a set of fields (key: value)")]
    try:
        return Service.model_validate(raw, context={"today": today})
    except ValidationError as error:
        return _errors(error, label)


def validate_entry(raw: dict[str, Any], *, today: date | None = None) -> Service:
    """One entry (the API). `today` defaults to London's date."""
    result = _validate(raw, None, today)
    if isinstance(result, list):
        raise DirectoryError(result)
    return result


def validate_entries(raw: list[dict[str, Any]], *, today: date | None = None) -> list[Service]:
    """Every entry of a directory; raises DirectoryError listing every bad field."""
    if not isinstance(raw, list):
        raise DirectoryError([FieldError(None, "services", "use a list of services")])
    services: list[Service] = []
    problems: list[FieldError] = []
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        result = _validate(entry, index, today)
        if isinstance(result, list):
            problems.extend(result)
        else:
            services.append(result)
        service_id = _label(entry, None)
        if service_id is None:
            continue
        if service_id in first_seen:
            problems.append(
                FieldError(
                    service_id,
                    "id",
                    f"used by more than one service (entries {first_seen[service_id] + 1} "
                    f"and {index + 1}); each id must be unique",
                )
            )
        else:
            first_seen[service_id] = index
    if problems:
        raise DirectoryError(problems)
    return services


def load_file(path: Path | None = None, *, today: date | None = None) -> list[Service]:
    """The directory file (default content/services/directory.yml), every entry valid."""
    path = path or DIRECTORY_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise DirectoryError([FieldError(None, "file", f"not valid YAML{where}")]) from None
    if not isinstance(data, dict):
        raise DirectoryError([FieldError(None, "file", "expected version: 1 and services:")])
    problems = [
        FieldError(None, str(key)[:_QUOTE_AT_MOST], "not a field we know: use version and services")
        for key in data
        if key not in ("version", "services")
    ]
    if data.get("version") != 1:
        problems.append(FieldError(None, "version", "use version: 1"))
    try:
        services = validate_entries(data.get("services"), today=today)
    except DirectoryError as error:
        raise DirectoryError(problems + error.errors) from None
    if problems:
        raise DirectoryError(problems)
    return services


def stale(services: Iterable[Service], *, today: date, months: int = 6) -> list[Service]:
    """Entries last verified more than `months` months before `today`, the oldest first."""
    cutoff = today - relativedelta(months=months)
    return sorted(
        (s for s in services if s.last_verified < cutoff), key=lambda s: (s.last_verified, s.id)
    )
