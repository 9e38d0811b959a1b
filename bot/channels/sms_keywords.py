"""Carrier and Twilio SMS keywords: opt-out (STOP), opt-in (START) and HELP.

Twilio acts on these itself (blocking or unblocking the number and sending its standard
reply) and still forwards the message to our webhook, so the gateway must recognise them
too rather than feed them to the assistant as conversation. Only a message that is the
keyword alone counts: "STOP" opts out, "stop texting me about court" does not.

YES is one of Twilio's opt-in keywords but is also an ordinary answer in conversation
("Did this happen today?" "Yes"). The caller should treat a word in AMBIGUOUS_OPT_IN as
opt-in only when the contact has opted out, and otherwise pass it on to the assistant.
"""

from __future__ import annotations

from typing import Literal

Keyword = Literal["stop", "start", "help"]

# Twilio's default English keywords (long code numbers):
# https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out (opt-out list) and
# https://help.twilio.com/hc/en-us/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-
# (opt-in and help lists).
OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
OPT_IN = frozenset({"start", "yes", "unstop"})
HELP = frozenset({"help", "info"})

# Opt-in keywords that are also everyday replies: opt-in only for a contact who opted out.
AMBIGUOUS_OPT_IN = frozenset({"yes"})

_KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(OPT_OUT, "stop"),
    **dict.fromkeys(OPT_IN, "start"),
    **dict.fromkeys(HELP, "help"),
}

# Trailing punctuation people add to a one-word reply ("Stop.", "STOP!!", "help?").
_TRAILING = ".!?,;:"


def keyword(body: str) -> Keyword | None:
    """The keyword class of an inbound SMS body, if the whole message is one keyword.

    Matching ignores case, surrounding whitespace and trailing punctuation; anything else
    in the message (another word) means it is not a keyword. A "start" result for a word
    in AMBIGUOUS_OPT_IN ("yes") is opt-in only if the contact has opted out.
    """
    return _KEYWORDS.get(_word(body))


def is_ambiguous_opt_in(body: str) -> bool:
    """The whole message is an opt-in word that is also an everyday answer ("Yes.")."""
    return _word(body) in AMBIGUOUS_OPT_IN


def _word(body: str) -> str:
    return body.strip().rstrip(_TRAILING).rstrip().casefold()
