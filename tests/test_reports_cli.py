"""``helpdesk report``: the HTML file or the CSV of a period, with progress on stderr."""

from __future__ import annotations

import asyncio
import csv
import io

from bot.cli import main
from bot.db import make_engine, make_sessionmaker
from bot.migrate import upgrade
from tests import report_seed as s


def _seeded_config(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'helpdesk.db'}"
    upgrade(url)

    async def seed():
        engine = make_engine(url)
        try:
            await s.seed(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    asyncio.run(seed())
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[kb]\nimport_on_start = false\n', encoding="utf-8")
    return config


def test_report_to_an_html_file_with_progress(tmp_path, capsys):
    config = _seeded_config(tmp_path)
    out = tmp_path / "report.html"
    assert main(["--config", str(config), "report", "--period", "2026-10", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Help desk report: October 2026" in html and html.count("data:image/png;base64,") == 5
    err = capsys.readouterr().err
    for section in ("ads", "questions", "gaps", "tickets", "satisfaction", "users", "html and charts"):
        assert f"  {section} " in err
    assert f"report 2026-10: html written to {out}" in err


def test_report_as_csv_on_standard_output_and_a_bad_period(tmp_path, capsys):
    config = _seeded_config(tmp_path)
    assert main(["--config", str(config), "report", "--period", "2026-Q4", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert ["period", "label", "", "2026-Q4"] in rows and ["ads", "submitted", "", "14"] in rows
    assert main(["--config", str(config), "report", "--period", "2026-13"]) == 2
    assert "expected YYYY-MM or YYYY-Qn" in capsys.readouterr().err


def test_reports_settings_are_checked_with_one_clear_line_each(tmp_path):
    import pytest

    from bot.config import ConfigError, parse_settings

    settings = parse_settings({"timezone": "Europe/Berlin"}, "<t>", tmp_path)
    assert (settings.reports.enabled, settings.reports.hour, settings.reports.quarterly, settings.report_tz.key) == (True, 8, True, "Europe/Berlin")
    assert parse_settings({"reports": {"timezone": "UTC"}}, "<t>", tmp_path).report_tz.key == "UTC"
    with pytest.raises(ConfigError) as info:
        parse_settings({"reports": {"hour": 25, "timezone": "Mars/Olympus"}}, "config.toml", tmp_path)
    lines = info.value.lines
    assert any(line.startswith("config.toml: reports.hour: found 25, expected an hour of the day from 0 to 23") for line in lines)
    assert any(line.startswith("config.toml: reports.timezone: found 'Mars/Olympus', expected an IANA time zone name") for line in lines)
