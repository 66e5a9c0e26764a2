"""Support tickets: intake, the staff chat workflow, SLA clocks, satisfaction ratings.

No ``telegram`` imports here: handlers translate updates into calls of
:mod:`escalation.service`, which takes an ``AsyncSession`` and never commits.
"""
