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


def list_publishers(session: Session) -> list[dict[str, object]]:
    """Every publisher, by slug, as `efdb publisher list` prints it."""
    publishers = session.execute(select(Publisher).order_by(Publisher.slug)).scalars()
    return [
        {
            "slug": publisher.slug,
            "name_zh": publisher.name_zh,
            "name_en": publisher.name_en,
            "sectors": publisher.sectors,
            "contact_email": publisher.contact_email,
            "status": publisher.status,
            "created_at": publisher.created_at.isoformat(),
        }
        for publisher in publishers
    ]


def set_publisher_status(
    session: Session, *, slug: str, suspended: bool, reason: str | None, actor: str
) -> Publisher:
    """Suspend a publisher (its clients' tokens and secrets stop working at once, for reads
    and writes alike) or resume it; audited as `publisher.suspended` / `publisher.resumed`."""
    publisher = session.execute(
        select(Publisher).where(Publisher.slug == slug).with_for_update()
    ).scalar_one_or_none()
    if publisher is None:
        raise AdminError(f"no publisher {slug!r}")
    wanted = "suspended" if suspended else "active"
    if publisher.status == wanted:
        raise AdminError(f"publisher {slug!r} is already {wanted}")
    publisher.status = wanted
    session.flush()
    append_event(
        session,
        actor=actor,
        action="publisher.suspended" if suspended else "publisher.resumed",
        subject_type="publisher",
        subject_id=slug,
        payload={"reason": reason} if reason else {},
    )
    return publisher
