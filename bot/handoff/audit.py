"""The audit log: append-only, who did what and when, never any message content.

Write an entry in the same transaction as the thing it records:
`session.add(audit.entry(coordinator, "claim", handoff_id=..., conversation_id=...))`.
Nothing in the code updates or deletes entries; on PostgreSQL a trigger refuses it.
"""

from __future__ import annotations

from typing import Any

from bot.handoff.models import AuditEntry, Coordinator

ACTIONS = frozenset(
    {
        "sign_in",
        "sign_in_failed",
        "sign_out",
        "view_queue",
        "view_conversation",
        "view_case",
        "view_audit",
        "view_tasks",
        "task_done",
        "view_referral",
        "referral_status",
        "claim",
        "reply",
        "note",
        "transfer",
        "close",
        "hand_back",
        "take_over",
        "secret_reset",
        "canned_reply_saved",
        "duty_on",
        "duty_off",
        "preferences",  # a verified victim changed their contact preferences (issue 7)
        "forget_me",  # a person's data was deleted at their request (bot/privacy/erase.py)
    }
)


def entry(
    actor: Coordinator | str,
    action: str,
    *,
    conversation_id: int | None = None,
    case_id: int | None = None,
    handoff_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """An audit row for `session.add`. `actor` is a coordinator or a label such as
    "agency:met" or "system". `detail` holds ids and outcomes, never content."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if isinstance(actor, Coordinator):
        return AuditEntry(
            coordinator_id=actor.id,
            actor=actor.username,
            action=action,
            conversation_id=conversation_id,
            case_id=case_id,
            handoff_id=handoff_id,
            detail=detail,
        )
    return AuditEntry(
        actor=actor,
        action=action,
        conversation_id=conversation_id,
        case_id=case_id,
        handoff_id=handoff_id,
        detail=detail,
    )
