"""Pseudonymous ids: what Rasa and the logs see instead of a phone number or chat id."""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(secret: str, channel: str, address: str) -> str:
    """A keyed HMAC of channel and address: stable for one person, meaningless without the key."""
    digest = hmac.new(secret.encode(), f"{channel}:{address}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]
