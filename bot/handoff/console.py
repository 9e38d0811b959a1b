"""The coordinator console (being written)."""

from fastapi import APIRouter

router = APIRouter(prefix="/console", tags=["console"])
