"""Guides for users (/guide), the first-time welcome after /start, and /language.

A guide is a few pages of templates (``guides/<guide>/<page>.html``), browsed with
Next / Back / All guides buttons that edit the message in place. Pages read the real
settings (photo limits, price ranges, expiry, strikes...), so they say what the bot does.
Button data is ``g:m`` (the list) or ``g:<guide>:<page>``, checked on every press.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from markupsafe import Markup
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, TelegramError

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.users import first_visit, set_locale
from handlers.casework import human_minutes
from handlers.ui import main_menu, not_modified, toast

log = logging.getLogger(__name__)

# The guides in menu order, and how many pages each has (guides/<id>/1.html ... n.html).
GUIDES: dict[str, int] = {
    "post": 3,
    "photos": 2,
    "price": 2,
    "safety": 2,
    "moderation": 3,
    "support": 3,
}


def facts(context: HelpdeskContext) -> dict[str, Any]:
    """What the guides say about limits and rules, from the running configuration."""
    settings = context.desk.settings
    ads = settings.ads
    policy = context.desk.ad_rules.policy
    labels = {c.id: c.label for c in ads.categories}
    def money(value: float) -> str:
        return f"{ads.currency_symbol} {int(value):,}".replace(",", " ")

    prices = [
        {"category": labels.get(key, key), "min": money(low), "max": money(high)}
        for key, (low, high) in policy.prices.items()
        if key != "*"
    ]
    reasons = list(ads.reject_reasons)
    return {
        "max_photos": ads.max_photos,
        "photo_categories": [c.label for c in ads.categories if c.photos_required],
        "title_min": ads.title_min,
        "title_max": ads.title_max,
        "description_min": policy.min_description,
        "description_max": ads.description_max,
        "symbol": ads.currency_symbol,
        "currency": ads.currency,
        "prices": prices,
        "expiry_days": ads.expiry_days,
        "reminder_days": ads.reminder_days,
        "max_ads": policy.max_ads,
        "max_ads_hours": int(policy.max_ads_window.total_seconds() // 3600),
        "duplicate_days": policy.duplicate_days,
        "severity": policy.severity,
        "strike_days": ads.strike_days,
        "penalties": [{"strikes": p.strikes, "action": p.action, "days": p.days} for p in ads.penalties],
        "strike_reasons": [r.label for r in reasons if r.strike],
        "reasons": [r.label for r in reasons],
        "auto_approve": ads.auto_approve_trusted,
        "reopen_days": settings.support.reopen_days,
        "waiting_days": settings.support.waiting_days,
        "csat": settings.support.csat,
        "first_response": human_minutes(settings.sla.minutes("first_response", "normal")),
        "channel": ads.channel_id is not None,
    }


def menu_markup(context: HelpdeskContext) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(context.label(f"guide_{gid}"), callback_data=f"g:{gid}:1")] for gid in GUIDES]
    )


def page(context: HelpdeskContext, guide: str, number: int) -> tuple[str, InlineKeyboardMarkup]:
    pages = GUIDES[guide]
    body = context.render(f"guides/{guide}/{number}.html", **facts(context))
    text = context.render("guides/page.html", title=context.label(f"guide_{guide}"), page=number, pages=pages, body=Markup(body))
    nav = []
    if number > 1:
        nav.append(InlineKeyboardButton(context.label("btn_guide_back"), callback_data=f"g:{guide}:{number - 1}"))
    if number < pages:
        nav.append(InlineKeyboardButton(context.label("btn_guide_next"), callback_data=f"g:{guide}:{number + 1}"))
    rows = [nav] if nav else []
    rows.append([InlineKeyboardButton(context.label("btn_guide_menu"), callback_data="g:m")])
    return text, InlineKeyboardMarkup(rows)


async def guide_command(update: Update, context: HelpdeskContext) -> None:
    """/guide and the menu item: the list of guides."""
    await context.bot.send_message(update.effective_chat.id, context.render("guides/menu.html"), reply_markup=menu_markup(context))  # type: ignore[union-attr]


async def on_guide_button(update: Update, context: HelpdeskContext) -> None:
    """``g:m`` or ``g:<guide>:<page>``: show it in place of the pressed message."""
    query = update.callback_query
    parts = query.data.split(":")  # type: ignore[union-attr]
    if parts[1] == "m":
        text, markup = context.render("guides/menu.html"), menu_markup(context)
    else:
        guide, number = parts[1], int(parts[2])
        if guide not in GUIDES or not 1 <= number <= GUIDES[guide]:
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
            return
        text, markup = page(context, guide, number)
    await toast(query)  # type: ignore[arg-type]
    try:
        await query.edit_message_text(text, reply_markup=markup)  # type: ignore[union-attr]
    except BadRequest as exc:
        if not_modified(exc):
            return
        # too old to edit (or not ours to edit): show it as a new message instead
        log.info("could not edit a guide message, sending a new one: %s", exc)
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=markup)  # type: ignore[union-attr]
    except TelegramError as exc:
        log.warning("could not show a guide page: %s", exc)


# ------------------------------------------------------------------ /start and the first-time welcome


async def greet(update: Update, context: HelpdeskContext) -> None:
    """/start: the greeting and main menu; the first time, a short tour after it."""
    user = update.effective_user
    async with unit_of_work(context.desk.sessions) as session:
        first = await first_visit(session, user_id=user.id, now=context.now())  # type: ignore[union-attr]
    await update.effective_message.reply_html(  # type: ignore[union-attr]
        context.render("start.html", name=user.first_name if user else ""), reply_markup=main_menu(context)
    )
    if not first:
        return
    rows = [
        [InlineKeyboardButton(context.label("btn_onboard_guides"), callback_data="ob:guides")],
        [
            InlineKeyboardButton(context.label("btn_onboard_newad"), callback_data="ob:newad"),
            InlineKeyboardButton(context.label("btn_onboard_ask"), callback_data="ob:ask"),
        ],
    ]
    if len(context.desk.templates.locales) > 1:
        rows.append([InlineKeyboardButton(context.label("btn_onboard_language"), callback_data="ob:language")])
    await context.bot.send_message(update.effective_chat.id, context.render("onboarding/welcome.html"), reply_markup=InlineKeyboardMarkup(rows))  # type: ignore[union-attr]


async def on_onboarding_button(update: Update, context: HelpdeskContext) -> None:
    """``ob:guides`` / ``ob:newad`` / ``ob:ask`` / ``ob:language`` under the welcome."""
    from handlers import ads

    query = update.callback_query
    action = query.data.split(":")[1]  # type: ignore[union-attr]
    await toast(query)  # type: ignore[arg-type]
    if action == "guides":
        await guide_command(update, context)
    elif action == "newad":
        await ads.newad(update, context)
    elif action == "language":
        await language_command(update, context)
    else:
        await context.bot.send_message(update.effective_chat.id, context.render("ask_prompt.html"))  # type: ignore[union-attr]


# ------------------------------------------------------------------ /language


def language_markup(context: HelpdeskContext) -> InlineKeyboardMarkup:
    templates = context.desk.templates
    current = context.locale
    rows = []
    for locale in templates.locales:
        name = templates.label(locale, "locale_name")
        rows.append([InlineKeyboardButton(("✅ " if locale == current else "") + name, callback_data=f"lang:{locale}")])
    return InlineKeyboardMarkup(rows)


async def language_command(update: Update, context: HelpdeskContext) -> None:
    """/language and the menu item: pick one of the shipped locales."""
    await context.bot.send_message(
        update.effective_chat.id, context.render("language/choose.html"), reply_markup=language_markup(context)  # type: ignore[union-attr]
    )


async def on_language_button(update: Update, context: HelpdeskContext) -> None:
    """``lang:<locale>``: store the choice; from now on the bot speaks it."""
    query = update.callback_query
    locale = query.data.split(":", 1)[1]  # type: ignore[union-attr]
    desk = context.desk
    if locale not in desk.templates.locales or context.account is None:
        await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        return
    user_id = query.from_user.id  # type: ignore[union-attr]
    async with unit_of_work(desk.sessions) as session:
        await set_locale(session, user_id=user_id, locale=locale)
    # the account cache must not keep serving the old language
    context.account = replace(context.account, locale=locale)
    cached = desk.accounts.get(user_id)
    if cached is not None:
        desk.accounts[user_id] = (replace(cached[0], locale=locale), cached[1])
    await toast(query, context.label("toast_language_set"))  # type: ignore[arg-type]
    try:
        await query.edit_message_reply_markup(reply_markup=None)  # type: ignore[union-attr]
    except TelegramError as exc:
        log.info("could not remove the language buttons: %s", exc)
    # the reply keyboard's labels change too: send the menu in the new language
    await context.bot.send_message(update.effective_chat.id, context.render("language/chosen.html"), reply_markup=main_menu(context))  # type: ignore[union-attr]
