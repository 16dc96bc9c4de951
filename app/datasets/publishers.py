"""Registering publishers (`efdb publisher create`): an administrator's act, audited in the
caller's transaction; nothing here commits."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.service import AdminError
from app.core.audit import append_event
from app.core.params import SLUG_PATTERN
from app.datasets.models import Publisher

_SLUG = re.compile(SLUG_PATTERN)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def get_publisher(session: Session, slug: str) -> Publisher | None:
    return session.execute(select(Publisher).where(Publisher.slug == slug)).scalar_one_or_none()


def create_publisher(
    session: Session,
    *,
    slug: str,
    name_zh: str | None,
    name_en: str | None,
    sectors: Iterable[str] = (),
    contact_email: str | None = None,
    actor: str,
) -> Publisher:
    if not _SLUG.fullmatch(slug):
        raise AdminError(
            f"publisher slug {slug!r} is not valid: lowercase letters, digits and '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    if not (name_zh or "").strip() and not (name_en or "").strip():
        raise AdminError("a publisher needs a name (name_zh or name_en)")
    if contact_email is not None and not _EMAIL.fullmatch(contact_email):
        raise AdminError(f"contact email {contact_email!r} is not an email address")
    codes = [code.strip() for code in sectors if code.strip()]
    if get_publisher(session, slug) is not None:
        raise AdminError(f"publisher {slug!r} already exists")
    publisher = Publisher(
        slug=slug,
        name_zh=name_zh,
        name_en=name_en,
        sectors=codes,
        contact_email=contact_email,
        status="active",
    )
    session.add(publisher)
    session.flush()
    append_event(
        session,
        actor=actor,
        action="publisher.created",
        subject_type="publisher",
        subject_id=slug,
        payload={"name_zh": name_zh, "name_en": name_en, "sectors": codes},
    )
    return publisher
