"""Base models shared by every domain's API schemas."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ApiModel(BaseModel):
    """Request bodies refuse unknown fields: no mass assignment."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list, in a stable order; follow `next` for the rest."""

    # A parametrised model (Page[FactorRead]) has no docstring of its own: the schema's
    # description comes from the configuration, which it inherits.
    model_config = ConfigDict(
        json_schema_extra={
            "description": "One page of a list, in a stable order; follow `next` for the rest."
        }
    )

    items: list[T] = Field(description="The items of this page (at most `limit`)")
    next: str | None = Field(
        description="Root-relative URL of the next page (same filters, opaque `cursor`), also "
        'sent as `Link: <…>; rel="next"`; null on the last page'
    )
