"""A key's detail page (`/console/keys/{key_id}`). Stub: the keys helper builds it."""

from fastapi import APIRouter

from infra.console.pages import BASE, Console


def key_detail_router(console: Console) -> APIRouter:
    del console
    return APIRouter(prefix=BASE, include_in_schema=False)
