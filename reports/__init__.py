"""The manager's monthly (and quarterly) report: figures over the database, an HTML file
with charts, a Telegram summary, CSV. No Telegram here: handlers/reports.py sends it."""

from reports.build import Report, build_report, figures_csv
from reports.metrics import Figures
from reports.periods import Period, PeriodError, last_month, month_of, parse_period

__all__ = ["Figures", "Period", "PeriodError", "Report", "build_report", "figures_csv", "last_month", "month_of", "parse_period"]
