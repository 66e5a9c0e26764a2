"""Thin Telegram adapters: parse the update, call one service, render one template, send.

No SQL and no business rules here; registration of all of them is in ``bot/app.py``.
"""
