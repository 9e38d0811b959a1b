"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bot.gateway import Gateway


def get_gateway(request: Request) -> Gateway:
    """The gateway made in the app's lifespan."""
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
