"""Victims' secrets (a PIN or memorable word), one-time codes and agency API keys.

- Secrets are hashed with argon2id (slow on purpose). A check against an unknown
  reference runs the same hash against a dummy, so timing says nothing.
- One-time codes are 6 random digits, kept as an HMAC with the server key.
- API keys are 32 random bytes, shown once; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PIN = re.compile(r"^\d{4,8}$")
MIN_WORD = 6
MAX_SECRET = 64
MAX_WORDS = 5
# Replies that mean "not my secret": passed to the assistant, never counted as a wrong
# guess, and so never allowed as a secret.
_NOT_A_SECRET = re.compile(
    r"\b(cancel|stop|quit|exit|skip|help|forgot|forget|forgotten|don'?t know|not sure|"
    r"person|human|someone|agent|update)\b|\?"
)
API_KEY_PREFIX = "wm_"


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's current recommended costs


def normalise_secret(text: str) -> str:
    """What we compare: case, spacing and accents as people type them on phones vary."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return re.sub(r"\s+", " ", text)


def secret_problem(text: str) -> str | None:
    """Why a new secret can't be used (a content key), or None if it's fine."""
    secret = normalise_secret(text)
    if not_a_secret(secret):
        return "case.secret_rule"
    if secret.isdigit():
        if not PIN.match(secret) or len(set(secret)) == 1 or secret in "0123456789":
            return "case.secret_rule"
        return None
    if len(secret) < MIN_WORD or len(secret) > MAX_SECRET:
        return "case.secret_rule"
    return None


def not_a_secret(text: str) -> bool:
    """A reply that can't be a secret: a question, "cancel", "I forgot", a long sentence."""
    secret = normalise_secret(text)
    return bool(_NOT_A_SECRET.search(secret)) or len(secret.split()) > MAX_WORDS


def hash_secret(text: str) -> str:
    return _hasher().hash(normalise_secret(text))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def verify_secret(stored_hash: str | None, text: str) -> bool:
    """Constant-time, and the same work when there is nothing to compare with."""
    try:
        return _hasher().verify(stored_hash or _dummy_hash(), normalise_secret(text)) and (
            stored_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def read_code(text: str) -> str | None:
    """A 6-digit code as people type it: "123 456", "123-456"."""
    digits = re.sub(r"[\s\-.]", "", text)
    return digits if re.fullmatch(r"\d{6}", digits) else None


def code_digest(server_key: str, code: str) -> str:
    return hmac.new(server_key.encode(), code.encode(), hashlib.sha256).hexdigest()


def new_link_token() -> str:
    """A Telegram deep-link token: letters, digits, _ and - only, at most 64."""
    return secrets.token_urlsafe(24)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
