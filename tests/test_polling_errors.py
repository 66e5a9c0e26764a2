"""getUpdates failing while polling (PTB reports it to the error handler with no update,
then retries): one clear line, repeated at most every few minutes, never a traceback
per retry."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from telegram.error import Conflict, NetworkError


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_second_poller_is_named_once_per_five_minutes_without_tracebacks(desk: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    conflict = Conflict("Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")
    for _ in range(3):  # PTB's retries, seconds apart
        await desk.app.process_error(None, conflict)
        desk.clock.advance(seconds=5)
    await desk.app.process_error(None, NetworkError("httpx.ConnectError: All connection attempts failed"))
    desk.clock.advance(minutes=5)
    await desk.app.process_error(None, conflict)

    lines = [r for r in caplog.records if r.name == "handlers.common"]
    assert [r.levelname for r in lines] == ["ERROR", "WARNING", "ERROR"]
    assert "another process is polling with this bot token" in lines[0].getMessage()
    assert "one `helpdesk run` per token" in lines[0].getMessage()
    assert "another database or machine" in lines[0].getMessage()  # the same database is kept out at start
    assert "could not fetch updates" in lines[1].getMessage()
    assert all(r.exc_info is None for r in lines)
    assert desk.tg.sent() == []  # nobody is messaged


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_other_errors_without_an_update_keep_their_traceback(desk: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await desk.app.process_error(None, RuntimeError("a job broke"))
    [line] = [r for r in caplog.records if r.name == "handlers.common"]
    assert line.levelname == "ERROR" and line.exc_info is not None


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_job_failing_with_a_network_error_keeps_its_traceback(desk: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A job's error also comes without an update, but with its job: not a polling problem."""
    caplog.set_level(logging.INFO)
    [job] = desk.app.job_queue.get_jobs_by_name("sla_sweep")
    await desk.app.process_error(None, NetworkError("httpx.ReadError: connection reset"), job=job)
    [line] = [r for r in caplog.records if r.name == "handlers.common"]
    assert line.levelname == "ERROR" and line.exc_info is not None
    assert "could not fetch updates" not in line.getMessage()
