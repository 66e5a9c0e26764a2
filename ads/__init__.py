"""Classified ads: drafts, the automatic policy pre-check, moderation, strikes.

No ``telegram`` imports here; the Telegram side is in ``handlers/ads.py``.
"""
