"""Periodic jobs (PTB's JobQueue): thin, like the handlers."""

from __future__ import annotations

import asyncio
import logging

from bot.context import HelpdeskContext
from bot.db import offloaded, sqlite_upkeep, unit_of_work
from kb import service

log = logging.getLogger(__name__)


async def refresh_kb(context: HelpdeskContext) -> None:
    """Swap in a new knowledge-base snapshot when the database's KB has changed.

    Runs every minute (``helpdesk kb import`` while the bot runs) and right after every
    change made from the staff chat (awaited there: the very next question uses it).

    - The read is a read-only unit of work: no write lock on SQLite, one snapshot of the
      revision and the entries on PostgreSQL.
    - The matcher is built in a worker thread (:func:`asyncio.to_thread`): a rebuild of
      a big knowledge base takes about a second, during which the event loop keeps
      serving updates and jobs. An edit of one entry only re-analyses that entry
      (:func:`kb.service.refresh_snapshot`).
    - Reloads may overlap (this job beside a staff edit): each one installs its snapshot
      only if its revision is newer than the installed one, so a slow reload never puts
      an older knowledge base back over a newer one. The revision only grows
      (:func:`kb.service.bump_revision`, in the transaction of each change).
    """
    desk = context.desk
    async with unit_of_work(desk.sessions, read_only=True) as session:
        version = await service.kb_version(session)
        if version <= desk.kb_version:
            return
        with offloaded():  # the whole knowledge base: read in SQLite's thread, off the loop
            doc = await service.export_kb(session)
    snapshot = await asyncio.to_thread(service.refresh_snapshot, desk.kb, doc, desk.synonyms)
    if version <= desk.kb_version:
        log.info("knowledge base revision %d built, but %d is in use already: dropped", version, desk.kb_version)
        return
    desk.kb, desk.kb_version = snapshot, version
    log.info("knowledge base reloaded: revision %d, %d entries", version, len(snapshot.entries))


#: How often the SQLite upkeep job checkpoints the WAL.
UPKEEP_SECONDS = 60


async def sqlite_upkeep_job(context: HelpdeskContext) -> None:
    """SQLite only (registered only then): checkpoint the WAL in a worker thread
    (:func:`bot.db.sqlite_upkeep`), so that no commit on the event loop has to."""
    done = await sqlite_upkeep(context.desk.engine)
    if done is not None:
        log.debug("SQLite upkeep: %d of %d WAL pages checkpointed", done.checkpointed, done.wal_pages)
