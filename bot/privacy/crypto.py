"""Encryption at rest: contact addresses and free text are sealed in the database.

Master keys come from `settings.data_keys` (WAYMARK_DATA_KEYS): comma separated, newest
first, each a urlsafe-base64 32-byte key (`python -m bot data-key new`). HKDF derives
two subkeys from each:

- a Fernet key, for free text: random sealing, so equal texts look different on disk;
- an AES-SIV key, for addresses that are looked up: deterministic sealing, so equal
  addresses seal equal and `==`, `IN`, unique constraints and upserts work in SQL.

A sealed value is `f1.<key id>.<Fernet token>` or `s1.<key id>.<SIV bytes, base64>`.
The key id (derived from the key, not secret) picks the key that opens it: any listed
key opens, the first one seals. docs/privacy.md explains rotation.

The column types look their keyring up per engine (`bind`), else use the process's
(`use`, or the settings' keys the first time one is needed).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr
from sqlalchemy import String, Text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.types import TypeDecorator

RANDOM, LOOKUP = "f1", "s1"  # the two kinds of sealed value (and their format version)
KID_CHARS = 8  # a key id is 6 bytes, base64url
PREFIX_CHARS = len(RANDOM) + 1 + KID_CHARS + 1  # "f1.AbCdEfGh."
LOOKUP_LENGTH = 255  # what SealedLookup stores: enough for a 128-character address


class DataKeyError(ValueError):
    """WAYMARK_DATA_KEYS is empty or holds something that is not a data key."""


class SealError(ValueError):
    """A stored value can't be opened (unknown key, changed, or never sealed)."""


def new_key() -> str:
    """A fresh master key, as WAYMARK_DATA_KEYS lists them."""
    return Fernet.generate_key().decode("ascii")


def _derive(master: bytes, purpose: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(master)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class DataKey:
    kid: str
    fernet: Fernet
    siv: AESSIV

    @classmethod
    def parse(cls, text: str, position: int) -> DataKey:
        try:
            master = base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
        except (binascii.Error, UnicodeEncodeError):
            master = b""
        if len(master) != 32:  # never echo the value: it may be a real key, mistyped
            raise DataKeyError(
                f"WAYMARK_DATA_KEYS: key {position} is not a data key. Each is a urlsafe"
                " base64 32-byte key, as `python -m bot data-key new` prints."
            )
        return cls(
            kid=_b64(_derive(master, b"waymark data key id v1", 6)),
            fernet=Fernet(base64.urlsafe_b64encode(_derive(master, b"waymark fernet v1", 32))),
            siv=AESSIV(_derive(master, b"waymark aes-siv v1", 64)),
        )


class Keyring:
    """The data keys, newest first: the first seals, any opens."""

    def __init__(self, keys: str | SecretStr | Iterable[str]) -> None:
        if isinstance(keys, SecretStr):
            keys = keys.get_secret_value()
        if isinstance(keys, str):
            keys = keys.split(",")
        texts = [key.strip() for key in keys if key.strip()]
        if not texts:
            raise DataKeyError(
                "WAYMARK_DATA_KEYS is empty: set it to a key from `python -m bot data-key new`."
            )
        parsed: dict[str, DataKey] = {}
        for position, text in enumerate(texts, start=1):
            key = DataKey.parse(text, position)
            parsed.setdefault(key.kid, key)  # a key listed twice counts once
        self.keys: tuple[DataKey, ...] = tuple(parsed.values())
        self.primary = self.keys[0]
        self._by_kid = parsed

    @property
    def kids(self) -> list[str]:
        return [key.kid for key in self.keys]

    def seal(self, text: str) -> str:
        """Random sealing, for free text."""
        token = self.primary.fernet.encrypt(_utf8(text)).decode("ascii")
        return f"{RANDOM}.{self.primary.kid}.{token}"

    def seal_lookup(self, text: str) -> str:
        """Deterministic sealing, for values found by equality."""
        return f"{LOOKUP}.{self.primary.kid}.{_b64(self.primary.siv.encrypt(_utf8(text), None))}"

    def open(self, sealed: str) -> str:
        kind, kid, body = split(sealed)
        key = self._by_kid.get(kid)
        if key is None:
            listed = ", ".join(self.kids)
            raise SealError(
                f"A stored value was sealed with data key {kid}, which is not in"
                f" WAYMARK_DATA_KEYS (it has {listed}). Put that key back in the list"
                " (after the newest) and restart."
            )
        try:
            if kind == RANDOM:
                plain = key.fernet.decrypt(body.encode("ascii"))
            else:
                plain = key.siv.decrypt(_unb64(body), None)
        except (InvalidToken, InvalidTag, binascii.Error, ValueError):
            raise SealError(
                f"A stored value with data key id {kid} did not open: it was changed, or"
                " the key listed is not the one that sealed it."
            ) from None
        return plain.decode("utf-8")

    def is_current(self, sealed: str) -> bool:
        """Sealed with the first key (nothing for a rotation to do)."""
        return is_sealed(sealed) and sealed[3 : 3 + KID_CHARS] == self.primary.kid

    def reseal(self, sealed: str, kind: str) -> str:
        """The value sealed with the first key, the way `kind` says; a value in clear
        (written around the column types) is sealed as it is."""
        if self.is_current(sealed) and sealed.startswith(kind):
            return sealed
        plain = self.open(sealed) if is_sealed(sealed) else sealed
        return self.seal(plain) if kind == RANDOM else self.seal_lookup(plain)

    def prefix(self, kind: str) -> str:
        """How values sealed with the first key start: `f1.<kid>.` or `s1.<kid>.`."""
        return f"{kind}.{self.primary.kid}."


def _utf8(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"Only text can be sealed, not {type(text).__name__}.")
    return text.encode("utf-8")


def split(sealed: str) -> tuple[str, str, str]:
    """(kind, key id, body) of a sealed value; SealError if it is not one."""
    if not is_sealed(sealed):
        raise SealError(
            "A stored value is not sealed: it was written around Waymark's column types"
            " (raw SQL?). `python -m bot data-key rotate` seals such values."
        )
    return sealed[:2], sealed[3 : 3 + KID_CHARS], sealed[PREFIX_CHARS:]


def is_sealed(value: str) -> bool:
    return (
        len(value) > PREFIX_CHARS
        and value[:2] in (RANDOM, LOOKUP)
        and value[2] == "."
        and value[PREFIX_CHARS - 1] == "."
    )


# -- the keyring in use ---------------------------------------------------------------------

_process: Keyring | None = None
_ATTRIBUTE = "waymark_keyring"


def use(keys: str | SecretStr | Iterable[str] | Keyring) -> Keyring:
    """Make these the process's keys (the gateway does, from its settings)."""
    global _process
    _process = keys if isinstance(keys, Keyring) else Keyring(keys)
    return _process


def bind(engine: Engine | AsyncEngine, ring: Keyring) -> None:
    """Use `ring` for everything this engine reads and writes."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    setattr(sync.dialect, _ATTRIBUTE, ring)


def keyring(dialect: Dialect | None = None) -> Keyring:
    """The engine's keyring if it has one, else the process's."""
    bound = getattr(dialect, _ATTRIBUTE, None)
    if bound is not None:
        return bound
    if _process is None:
        from bot.config import get_settings

        return use(get_settings().data_keys)
    return _process


# -- column types ---------------------------------------------------------------------------


class _Guarded(TypeDecorator.Comparator):  # type: ignore[type-arg]
    """SQL can only test a randomly sealed column for NULL: anything else would compare
    ciphertexts (never equal, in no useful order). Compare such values in Python."""

    allowed: frozenset[Any] = frozenset({operators.is_, operators.is_not})

    def _check(self, op: Any, other: tuple[Any, ...]) -> None:
        null_test = op in (operators.eq, operators.ne) and other and other[0] is None
        # Column against column: SQLAlchemy itself compares columns (as dict keys).
        columns = bool(other) and all(
            isinstance(o, ColumnElement) and not isinstance(o, BindParameter) for o in other
        )
        if op not in self.allowed and not null_test and not columns:
            name = getattr(op, "__name__", str(op))
            raise TypeError(
                f"{self.expr} is sealed ({type(self.type).__name__}): SQL can't use it"
                f" with {name}. Load the rows and compare in Python."
            )

    def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
        self._check(op, other)
        return super().operate(op, *other, **kwargs)

    def reverse_operate(self, op: Any, other: Any, **kwargs: Any) -> Any:
        self._check(op, (other,))
        return super().reverse_operate(op, other, **kwargs)


class _LookupGuarded(_Guarded):
    # Deterministic: equal values seal equal, so equality (and IN) still work.
    allowed = frozenset(
        {
            operators.is_,
            operators.is_not,
            operators.eq,
            operators.ne,
            operators.in_op,
            operators.not_in_op,
            operators.is_distinct_from,
            operators.is_not_distinct_from,
        }
    )


class SealedText(TypeDecorator[str]):
    """Free text, sealed at random (Fernet). Stored as Text."""

    impl = Text
    cache_ok = True
    comparator_factory = _Guarded  # type: ignore[assignment]

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring(dialect).seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring(dialect).open(value)


class SealedJSON(TypeDecorator[Any]):
    """A JSON value, serialised and then sealed at random. Stored as Text; Python None
    is SQL NULL."""

    impl = Text
    cache_ok = True
    comparator_factory = _Guarded  # type: ignore[assignment]

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring(dialect).seal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(keyring(dialect).open(value))


class SealedLookup(TypeDecorator[str]):
    """An address that is looked up, sealed deterministically (AES-SIV): `==`, `IN`,
    unique constraints and upserts work. Stored as String(255)."""

    impl = String(LOOKUP_LENGTH)
    cache_ok = True
    comparator_factory = _LookupGuarded  # type: ignore[assignment]

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring(dialect).seal_lookup(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring(dialect).open(value)


def kind_of(sealed_type: TypeDecorator[Any]) -> str:
    """RANDOM or LOOKUP: how a column of this type is sealed."""
    return LOOKUP if isinstance(sealed_type, SealedLookup) else RANDOM


SEALED_TYPES = (SealedText, SealedJSON, SealedLookup)
