"""The report's charts: matplotlib (Agg backend, no display) to PNG, embedded in the
HTML as ``data:image/png;base64,...`` URIs so that the report is one self-contained file.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib
import numpy

matplotlib.use("Agg")  # before pyplot: no display, safe in a server and in threads

from matplotlib.figure import Figure  # noqa: E402

BLUE, GREEN, GREY = "#2b6cb0", "#2f855a", "#718096"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str) -> tuple[Figure, Any]:
    # Figure() directly (not pyplot): nothing global, nothing to close
    fig = Figure(figsize=(7.5, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def per_day(title: str, days: list[str], series: list[tuple[str, list[int], str]]) -> str:
    """Bars of counts per day; several series side by side."""
    fig, ax = _figure(title)
    x = range(len(days))
    width = 0.8 / len(series)
    for i, (label, values, colour) in enumerate(series):
        ax.bar([d + (i - (len(series) - 1) / 2) * width for d in x], values, width=width, color=colour, label=label)
    if len(series) > 1:
        ax.legend(frameon=False, fontsize=8, ncols=len(series), loc="lower right", bbox_to_anchor=(1, 1))
    step = max(1, len(days) // 10)
    ax.set_xticks(list(x)[::step], days[::step], fontsize=8)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _png(fig)


def histogram(title: str, values: list[float], unit: str) -> str:
    fig, ax = _figure(title)
    if values:
        # an array, not the list: matplotlib checks a list's items one by one (the call
        # took 42 ms, now 15, for a month's 35,000 approvals at benchmarks/scale.py's
        # size); the same PNG
        ax.hist(numpy.asarray(values, dtype=float), bins=min(20, max(1, len(set(values)))), color=BLUE)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color=GREY)
    ax.set_xlabel(unit, fontsize=8)
    return _png(fig)


def bars(title: str, labels: list[str], values: list[float], colour: str = BLUE, horizontal: bool = False) -> str:
    fig, ax = _figure(title)
    if not labels:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color=GREY)
    elif horizontal:
        ax.barh(labels[::-1], values[::-1], color=colour)
        ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.bar(labels, values, color=colour)
        ax.yaxis.get_major_locator().set_params(integer=True)
    return _png(fig)


def top_categories(ads: list[tuple[str, int]], tickets: list[tuple[str, int]]) -> str:
    """Two panels: ads submitted by category, tickets opened by category."""
    fig = Figure(figsize=(7.5, 3.0), layout="constrained")
    for i, (title, rows, colour) in enumerate((("Ads submitted by category", ads, BLUE), ("Tickets opened by category", tickets, GREEN))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.set_title(title, fontsize=10, loc="left")
        ax.spines[["top", "right"]].set_visible(False)
        if rows:
            ax.barh([r[0] for r in rows][::-1], [r[1] for r in rows][::-1], color=colour)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.tick_params(labelsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color=GREY)
            ax.set_yticks([])
    return _png(fig)


def all_charts(figures: Any, labels: dict[str, dict[str, str]]) -> dict[str, str]:
    """The five charts of the report, by name."""
    days = [d.strftime("%d %b") for d in figures.period.days()]
    ads, tickets, sat = figures.ads, figures.tickets, figures.satisfaction
    ad_cats = [(labels["ad_categories"].get(c["category"], c["category"]), c["submitted"]) for c in ads["by_category"][:8]]
    ticket_cats = [(labels["ticket_categories"].get(c["category"], c["category"]), c["opened"]) for c in tickets["by_category"][:8]]
    return {
        "ads_per_day": per_day("Ads submitted per day", days, [("submitted", ads["per_day"], BLUE)]),
        "approval_time": histogram(
            "Approval time (ads approved by a moderator)", [m / 60 for m in ads["approval_minutes_values"]], "hours from submission to approval"
        ),
        "tickets_opened_resolved": per_day(
            "Tickets opened vs resolved per day", days,
            [("opened", tickets["opened_per_day"], BLUE), ("resolved", tickets["resolved_per_day"], GREEN)],
        ),
        "csat_distribution": bars("Satisfaction ratings (1-5 stars)", ["1", "2", "3", "4", "5"], [sat["distribution"][s] for s in range(1, 6)], GREEN),
        "top_categories": top_categories(ad_cats, ticket_cats),
    }
