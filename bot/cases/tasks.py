"""Coordinator tasks made during a conversation: one task per thing, by its dedupe key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.models import Task


async def add_task_once(
    session: AsyncSession, *, key: str, kind: str, detail: str, now: datetime, **fields: Any
) -> bool:
    """Add a task due now unless one with this key exists; whether it was added."""
    if await session.scalar(select(Task.id).where(Task.dedupe_key == key)):
        return False
    session.add(
        Task(kind=kind, dedupe_key=key, detail=detail, due_at=now, created_at=now, **fields)
    )
    return True
