"""Build the report for a period: every section's figures, the HTML file with its
charts, the short summary for the Telegram caption, and the raw figures as CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db import utcnow
from bot.templates import Templates
from reports.metrics import SECTIONS, Figures
from reports.periods import Period, parse_period

# The caption of a document: Telegram's limit after entity parsing.
CAPTION_LIMIT = 1024

Progress = Callable[[str, float], None]  # (section, seconds it took)


@dataclass
class Report:
    figures: Figures
    html: str
    summary: str  # Telegram HTML, for the caption
    generated_at: datetime

    @property
    def period(self) -> Period:
        return self.figures.period

    @property
    def filename(self) -> str:
        return f"report-{self.period.label}.html"

    def csv(self) -> str:
        return figures_csv(self.figures)


@lru_cache(maxsize=8)
def _templates(locale: str, extra_dir: Path | None) -> Templates:
    return Templates(locale, extra_dir)


def labels_for(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        "ad_categories": {c.id: c.label for c in settings.ads.categories},
        "ticket_categories": {c.id: c.label for c in settings.support.categories},
        "reasons": {r.id: r.label for r in settings.ads.reject_reasons},
    }


async def collect(session: AsyncSession, period: Period, progress: Progress | None = None) -> Figures:
    """Every section's figures, one query group after another."""
    figures = Figures(period)
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL compiles a query whose estimated cost passes jit_above_cost: for the
        # pending ads' (a correlated subquery per candidate) that took longer than
        # running it (90-230 ms at benchmarks/scale.py's size). This transaction only.
        await session.execute(text("SET LOCAL jit = off"))
    for name, fn in SECTIONS:
        started = time.perf_counter()
        setattr(figures, name, await fn(session, period))
        if progress is not None:
            progress(name, time.perf_counter() - started)
    return figures


def duration(minutes: float | None) -> str:
    """40 s, 45 min, 3.5 h, 2.1 d; an en dash for no value."""
    if minutes is None:
        return "–"
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:g}%"


def signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+g}%"


def render(figures: Figures, settings: Settings, *, generated_at: datetime, with_charts: bool = True) -> tuple[str, str]:
    """(the HTML document, the Telegram summary)."""
    templates = _templates(settings.locale.default, settings.locale.templates_dir)
    locale = templates.default
    labels = labels_for(settings)
    values: dict[str, Any] = {
        "f": figures,
        "period": figures.period,
        "empty": figures.empty,
        "labels": labels,
        "duration": duration,
        "percent": percent,
        "signed": signed,
        "timezone": figures.period.tz.key,
        "generated_at": generated_at.astimezone(figures.period.tz).strftime("%Y-%m-%d %H:%M"),
    }
    chart_uris: dict[str, str] = {}
    if with_charts:
        from reports import charts  # matplotlib: imported when a report is drawn, not at start-up

        chart_uris = charts.all_charts(figures, labels)
    html = templates.render("reports/report.html", locale, charts=chart_uris, **values)
    summary = templates.render("reports/summary.html", locale, **values)
    return html, summary


async def build_report(
    session: AsyncSession,
    settings: Settings,
    period: Period | str,
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
    charts: bool = True,
) -> Report:
    """The whole report for ``period`` (a :class:`Period` or ``2026-10`` / ``2026-Q4``
    in the reports' time zone). ``charts=False`` skips drawing (e.g. for CSV only)."""
    if isinstance(period, str):
        period = parse_period(period, settings.report_tz)
    figures = await collect(session, period, progress)
    return await finish(figures, settings, progress=progress, now=now, charts=charts)


async def finish(
    figures: Figures, settings: Settings, *, progress: Progress | None = None, now: datetime | None = None, charts: bool = True
) -> Report:
    """Draw and render collected figures. Needs no database: callers on SQLite end
    their transaction first, so the write lock is not held while charts are drawn."""
    started = time.perf_counter()
    generated_at = now or utcnow()
    # drawing the charts is CPU work: off the event loop, the bot keeps answering
    html, summary = await asyncio.to_thread(render, figures, settings, generated_at=generated_at, with_charts=charts)
    if progress is not None:
        progress("html and charts", time.perf_counter() - started)
    return Report(figures, html, summary, generated_at)


def figures_csv(figures: Figures) -> str:
    """The raw figures, one per row: section, metric, key, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "metric", "key", "value"])
    period = figures.period
    writer.writerow(["period", "label", "", period.label])
    writer.writerow(["period", "start_utc", "", period.start.isoformat()])
    writer.writerow(["period", "end_utc", "", period.end.isoformat()])
    writer.writerow(["period", "timezone", "", period.tz.key])
    days = [d.isoformat() for d in period.days()]
    for section in ("ads", "questions", "gaps", "tickets", "satisfaction", "users"):
        _flatten(writer, section, "", getattr(figures, section), days)
    return out.getvalue()


def _flatten(writer: Any, section: str, metric: str, value: Any, days: list[str]) -> None:
    if metric.endswith("per_day") and isinstance(value, list):
        for day, n in zip(days, value, strict=False):
            writer.writerow([section, metric, day, n])
    elif metric.endswith("_values"):
        return  # the raw durations behind a median: not a figure
    elif isinstance(value, dict):
        for key, sub in value.items():
            _flatten(writer, section, f"{metric}.{key}" if metric else str(key), sub, days)
    elif isinstance(value, list):
        for i, row in enumerate(value, 1):
            if isinstance(row, dict):
                key = str(next(iter(row.values())))
                for k, v in list(row.items())[1:]:
                    writer.writerow([section, f"{metric}.{k}", key, "" if v is None else v])
            else:
                writer.writerow([section, metric, i, row])
    else:
        writer.writerow([section, metric, "", "" if value is None else value])
