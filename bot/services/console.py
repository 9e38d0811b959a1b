"""Referrals in the coordinators' console: the printable page, the JSON export and the
status a coordinator records (sent, accepted, declined, contacted).

A referral shows up as a task in the console's task list; when it reaches an end
(declined, contacted, or withdrawn by the person) its task is done.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.models import Task, TaskState
from bot.handoff import audit
from bot.handoff.auth import CsrfChecked, CurrentCoordinator, Signed
from bot.handoff.console import ConsoleRoute, _audit, _gateway, _page
from bot.services.models import NEXT, OPEN, Referral, ReferralEvent, ReferralStatus, ServiceRow
from bot.services.referrals import export
from bot.services.schema import Service

router = APIRouter(
    prefix="/console", tags=["console"], route_class=ConsoleRoute, include_in_schema=False
)
STATUS_TEXT = {
    ReferralStatus.PENDING: "Waiting to be sent",
    ReferralStatus.SENT: "Sent to the service",
    ReferralStatus.ACCEPTED: "Accepted by the service",
    ReferralStatus.DECLINED: "Declined by the service",
    ReferralStatus.CONTACTED: "The service has contacted the person",
    ReferralStatus.WITHDRAWN: "Withdrawn by the person",
}
NOTE_MAX = 200


class StatusIn(BaseModel):
    status: str = Field(description="sent, accepted, declined or contacted")
    note: str | None = Field(default=None, max_length=NOTE_MAX)


async def _export(session: AsyncSession, request: Request, referral_id: int) -> dict[str, Any]:
    referral = await session.get(Referral, referral_id)
    if referral is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no referral #{referral_id}.")
    service = _gateway(request).signposts.directory.get(referral.service_id)
    if service is None:  # retired since: read the entry as it was stored
        row = await session.get(ServiceRow, referral.service_id)
        assert row is not None
        service = Service.model_validate(row.entry)
    events = list(
        await session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral_id)
            .order_by(ReferralEvent.at, ReferralEvent.id)
        )
    )
    data = export(referral, service, events)
    data["status_text"] = STATUS_TEXT.get(referral.status, referral.status)
    data["next"] = sorted(NEXT.get(referral.status, ()))
    return data


async def _view(request: Request, signed: Signed, referral_id: int) -> dict[str, Any]:
    async with _gateway(request).sessions() as session:
        data = await _export(session, request, referral_id)
    await _audit(
        request,
        audit.entry(
            signed.coordinator,
            "view_referral",
            conversation_id=data["conversation_id"],
            detail={"referral": referral_id},
        ),
    )
    return data


async def record_status(
    request: Request, signed: Signed, referral_id: int, new: str, note: str | None
) -> dict[str, Any]:
    """Move a referral on, if that step is allowed from where it is now."""
    note = (note or "").strip()[:NOTE_MAX] or None
    now = datetime.now(UTC)
    async with _gateway(request).sessions() as session, session.begin():
        referral = await session.get(Referral, referral_id, with_for_update=True)
        if referral is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no referral #{referral_id}.")
        allowed = NEXT.get(referral.status, frozenset())
        if new not in allowed:
            now_text = STATUS_TEXT.get(referral.status, referral.status).lower()
            if not allowed:
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"Referral #{referral_id} is closed: {now_text}."
                )
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Referral #{referral_id} is {now_text}; it can only be marked "
                f"{' or '.join(sorted(allowed))}.",
            )
        referral.status = new
        session.add(
            ReferralEvent(
                referral_id=referral.id,
                status=new,
                by=f"coordinator:{signed.coordinator.username}",
                note=note,
                at=now,
            )
        )
        if new not in OPEN:
            referral.closed_at = now
            if referral.task_id is not None:
                task = await session.get(Task, referral.task_id)
                if task is not None and task.state == TaskState.OPEN:
                    task.state, task.closed_at = TaskState.DONE, now
        session.add(
            audit.entry(
                signed.coordinator,
                "referral_status",
                conversation_id=referral.conversation_id,
                detail={"referral": referral_id, "status": new},
            )
        )
    _gateway(request).handoffs.broadcast({"type": "tasks"})
    return {"id": referral_id, "status": new}


@router.get("/api/referrals")
async def api_referrals(
    request: Request, signed: CurrentCoordinator, open_only: bool = True
) -> dict[str, Any]:
    """Referrals, newest first (open ones only unless `open_only=false`)."""
    query = select(Referral).order_by(Referral.id.desc()).limit(200)
    if open_only:
        query = query.where(Referral.status.in_(OPEN))
    directory = _gateway(request).signposts.directory
    async with _gateway(request).sessions() as session:
        rows = list(await session.scalars(query))
    return {
        "referrals": [
            {
                "id": r.id,
                "status": r.status,
                "status_text": STATUS_TEXT.get(r.status, r.status),
                "service_id": r.service_id,
                "service_name": (s.name if (s := directory.get(r.service_id)) else r.service_id),
                "conversation_id": r.conversation_id,
                "created_at": r.consented_at.isoformat(),
            }
            for r in rows
        ]
    }


@router.get("/api/referrals/{referral_id}")
async def api_referral(request: Request, referral_id: int, signed: CurrentCoordinator) -> Any:
    """The referral as structured JSON, to send on to the service."""
    return await _view(request, signed, referral_id)


@router.post("/api/referrals/{referral_id}/status")
async def api_referral_status(
    request: Request, referral_id: int, body: StatusIn, signed: CsrfChecked
) -> dict[str, Any]:
    return await record_status(request, signed, referral_id, body.status, body.note)


@router.get("/referrals/{referral_id}", include_in_schema=False)
async def referral_page(request: Request, referral_id: int, signed: CurrentCoordinator) -> Response:
    """The printable referral, with the buttons to record what happened."""
    data = await _view(request, signed, referral_id)
    return _page(
        request,
        "referral.html",
        signed,
        referral=data,
        saved=request.query_params.get("saved") == "1",
        status_text=STATUS_TEXT,
    )


@router.post("/referrals/{referral_id}/status", include_in_schema=False)
async def referral_status_form(
    request: Request,
    referral_id: int,
    signed: CsrfChecked,
    new_status: Annotated[str, Form(alias="status")] = "",
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
) -> Response:
    await record_status(request, signed, referral_id, new_status, note)
    return RedirectResponse(f"/console/referrals/{referral_id}?saved=1", status_code=303)
