"""The routes of one stored item, written once for every resource: read, partial update, delete.

No `from __future__ import annotations` here: FastAPI reads the body model from the annotations of the
functions made below, so they must be the classes themselves, not their names."""
from typing import Annotated, Callable

from fastapi import APIRouter, Depends
from sqlmodel import Session, SQLModel

from ..deps import SessionDep, save


def item_routes(router: APIRouter, path: str, what: str, find: Callable[..., SQLModel], public: type[SQLModel],
                changes: type[SQLModel], delete: Callable[[Session, SQLModel], None]) -> None:
    """GET, PATCH and DELETE `path` ("/{content_id}") on `router`, named read_/update_/delete_`what`.

    `find` is a dependency that reads the path's id and returns the row or raises a 404; PATCH sets the
    fields the client sent (`changes`), DELETE hands the row to `delete(session, item)`."""
    Item = Annotated[SQLModel, Depends(find)]

    @router.get(path, response_model=public, name=f"read_{what}")
    def read(item: Item):
        return item

    @router.patch(path, response_model=public, name=f"update_{what}")
    def update(body: changes, item: Item, session: SessionDep):
        item.sqlmodel_update(body.model_dump(exclude_unset=True))
        return save(session, item)

    @router.delete(path, status_code=204, name=f"delete_{what}")
    def remove(item: Item, session: SessionDep):
        delete(session, item)
