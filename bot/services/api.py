"""The directory API for agencies (agency keys with the `directory:*` scopes).

- `GET /api/services`: every active entry (id, name, last verified, where it came from)
- `GET /api/services/stale?months=6`: entries not verified in that many months
- `GET /api/services/{id}`: one entry, as stored
- `PUT /api/services/{id}`: add or correct one entry; 422 lists every bad field
- `DELETE /api/services/{id}`: retire an entry (referrals that point at it are kept)

A change takes effect for matching at once; the gateway re-indexes after each write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases.api import Caller, LimitedBodyRoute, _scope
from bot.deps import GatewayDep
from bot.services import directory as store
from bot.services import schema
from bot.services.models import ServiceRow
from bot.services.schema import DirectoryError

DirectoryRead = Annotated[Caller, Depends(_scope("directory:read"))]
DirectoryWrite = Annotated[Caller, Depends(_scope("directory:write"))]
NO_SERVICE = "There is no active service with that id."

router = APIRouter(prefix="/api", tags=["directory"], route_class=LimitedBodyRoute)


def _row_json(row: ServiceRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "last_verified": row.last_verified.isoformat(),
        "origin": row.origin,
        "active": row.active,
    }


def _invalid(error: DirectoryError) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "loc": ("body", *e.field.replace("[", ".").replace("]", "").split(".")),
                "msg": f"{e.field}: {e.message}",
                "type": "value_error",
            }
            for e in error.errors
        ]
    )


@router.get("/services")
async def list_services(gateway: GatewayDep, caller: DirectoryRead) -> dict[str, Any]:
    async with gateway.sessions() as session:
        rows = await session.scalars(
            select(ServiceRow).where(ServiceRow.active.is_(True)).order_by(ServiceRow.id)
        )
        return {"services": [_row_json(r) for r in rows]}


@router.get("/services/stale")
async def stale_services(
    gateway: GatewayDep,
    caller: DirectoryRead,
    months: Annotated[int, Query(ge=1, le=120)] = store.STALE_MONTHS,
) -> dict[str, Any]:
    """Entries to check again: not verified in `months` months (6 by default)."""
    today = datetime.now(UTC).date()
    async with gateway.sessions() as session:
        rows = await session.run_sync(lambda s: store.stale_rows(s, today=today, months=months))
        return {"months": months, "services": [_row_json(r) for r in rows]}


@router.get("/services/{service_id}")
async def get_service(
    gateway: GatewayDep, caller: DirectoryRead, service_id: str
) -> dict[str, Any]:
    async with gateway.sessions() as session:
        row = await session.get(ServiceRow, service_id[:64])
        if row is None or not row.active:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NO_SERVICE)
        return {**_row_json(row), "entry": row.entry}


@router.put("/services/{service_id}")
async def put_service(
    gateway: GatewayDep,
    caller: DirectoryWrite,
    service_id: str,
    response: Response,
    body: Annotated[dict[str, Any], Body(description="One directory entry (docs/signposting.md)")],
) -> dict[str, Any]:
    """Add or correct one entry. Every bad field is listed; nothing changes unless all
    of it is right."""
    if body.get("id", service_id) != service_id:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "id"),
                    "msg": "id: must be the same as the id in the address.",
                    "type": "value_error",
                }
            ]
        )
    try:
        service = schema.validate_entry({**body, "id": service_id})
    except DirectoryError as error:
        raise _invalid(error) from None

    def write(session: Session) -> bool | None:
        return store.put(session, service, f"api:{caller.agency}")

    async with gateway.sessions() as session, session.begin():
        added = await session.run_sync(write)
    await gateway.signposts.reload()
    response.status_code = status.HTTP_201_CREATED if added else status.HTTP_200_OK
    return {"id": service.id, "added": bool(added), "changed": added is not None}


@router.delete("/services/{service_id}")
async def retire_service(
    gateway: GatewayDep, caller: DirectoryWrite, service_id: str
) -> dict[str, Any]:
    async with gateway.sessions() as session, session.begin():
        retired = await session.run_sync(lambda s: store.retire(s, service_id[:64]))
    if not retired:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_SERVICE)
    await gateway.signposts.reload()
    return {"id": service_id, "retired": True}
