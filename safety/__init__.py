"""Waymark's rule-based safety layer: danger and self-harm signals in a message.

    >>> from safety import assess, Tier
    >>> a = assess("he's outside now")
    >>> a.tier is Tier.EMERGENCY, a.kind
    (True, 'danger')

Pure Python (stdlib + PyYAML), Python 3.10+, no Rasa imports: the Rasa NLU
component and the gateway both import it. Patterns are data in signals.yml.
"""

from safety.detector import (
    EMERGENCY_INTENT,
    SELF_HARM_INTENT,
    Assessment,
    Tier,
    assess,
    forced_intent,
    normalise,
)

__all__ = [
    "EMERGENCY_INTENT",
    "SELF_HARM_INTENT",
    "Assessment",
    "Tier",
    "assess",
    "forced_intent",
    "normalise",
]
