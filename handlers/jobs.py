"""Periodic jobs (PTB's JobQueue): thin, like the handlers."""

from __future__ import annotations

import logging

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from kb import service

log = logging.getLogger(__name__)


async def refresh_kb(context: HelpdeskContext) -> None:
    """Swap in a new knowledge-base snapshot when the database's KB has changed."""
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        version = await service.kb_version(session)
        if version == desk.kb_version:
            return
        snapshot = await service.load_snapshot(session, desk.synonyms)
    desk.kb, desk.kb_version = snapshot, version
    log.info("knowledge base reloaded: %d entries", len(snapshot.entries))
