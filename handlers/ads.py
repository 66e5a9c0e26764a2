"""Posting an ad step by step (state in the database), and moderating it in the staff chat."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, ChatMigrated, RetryAfter, TelegramError, TimedOut

from ads import service, strikes
from ads.models import Ad, AdEventKind, AdStatus, Step
from ads.service import Decision, FieldError, SubmitOutcome
from bot import card_retries
from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.models import User
from bot.users import get_state, set_state
from escalation import service as escalation_service
from handlers import casework, delivery, notices
from handlers.staffauth import is_moderator, remember_staff
from handlers.ui import drop_stale_copy, guarded, main_menu, not_modified, set_markup, toast

log = logging.getLogger(__name__)

# A draft the user touched this recently takes their typed answers; an older one waits
# for /newad ("continue or start over") and their messages are questions again.
DRAFT_ACTIVE = timedelta(hours=2)
TEXT_STEPS = (Step.TITLE, Step.DESCRIPTION, Step.PRICE, Step.LOCATION)


def rules(context: HelpdeskContext) -> service.Rules:
    return context.desk.ad_rules


def price_text(context: HelpdeskContext, ad: Ad) -> str:
    symbol = context.desk.settings.ads.currency_symbol
    if ad.price_kind == "free":
        return "Free"
    amount = f"{symbol} {ad.price_amount:,.0f}".replace(",", " ") if ad.price_amount is not None else ""
    if ad.price_kind == "negotiable":
        return f"{amount} (negotiable)".strip() if amount else "Negotiable"
    return amount


def category_text(context: HelpdeskContext, ad: Ad) -> str:
    found = context.desk.settings.ads.subcategory(ad.subcategory or "")
    return f"{found[0].label} › {found[1].label}" if found else (ad.category or "")


def ad_values(context: HelpdeskContext, ad: Ad) -> dict[str, Any]:
    return {"ad": ad, "price": price_text(context, ad), "category": category_text(context, ad), "bot_username": context.bot.username}


# ------------------------------------------------------------------ the posting conversation


async def newad(update: Update, context: HelpdeskContext) -> None:
    """/newad and the menu item: start, or offer to continue an unfinished draft."""
    user_id = update.effective_user.id  # type: ignore[union-attr]
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        blocked = await service.posting_block(session, user_id=user_id, now=context.now())
        draft = None if blocked else await service.current_draft(session, user_id=user_id)
        if blocked is None and (draft is None or (draft.step == Step.CATEGORY and not draft.title)):
            draft = await service.start_draft(session, rules(context), user_id=user_id, now=context.now())
            fresh = True
        else:
            fresh = False
    if blocked is not None:
        until = casework.local_time(context, blocked.blocked_until) if blocked.blocked_until else None
        await context.bot.send_message(
            chat_id, context.render("ads/posting_blocked.html", until=until, reason=blocked.status_reason),
            reply_markup=appeal_button(context, context.locale),
        )
        return
    if fresh:
        await prompt(context, chat_id, draft)  # type: ignore[arg-type]
        return
    buttons = InlineKeyboardMarkup([[
        InlineKeyboardButton(context.label("btn_continue"), callback_data="ad:resume"),
        InlineKeyboardButton(context.label("btn_start_over"), callback_data="ad:fresh"),
    ]])
    await context.bot.send_message(chat_id, context.render("ads/resume.html", title=draft.title), reply_markup=buttons)  # type: ignore[union-attr]


async def prompt(context: HelpdeskContext, chat_id: int, ad: Ad, *, parent: str | None = None) -> None:
    """Ask for what the draft's current step needs."""
    s = context.desk.settings.ads
    step = Step(ad.step) if ad.step else Step.PREVIEW
    markup: Any = None
    if step == Step.CATEGORY:
        top = s.category(parent) if parent else None
        if top is None:
            rows = [[InlineKeyboardButton(c.label, callback_data=f"ad:cat:{c.id}")] for c in s.categories]
        else:
            rows = [[InlineKeyboardButton(c.label, callback_data=f"ad:sub:{c.id}")] for c in top.children]
            rows.append([InlineKeyboardButton(context.label("btn_back"), callback_data="ad:cat:-")])
        markup = InlineKeyboardMarkup(rows)
        text = context.render("ads/step_category.html", parent=top.label if top else None)
    elif step == Step.TITLE:
        text = context.render("ads/step_title.html", min=s.title_min, max=s.title_max)
    elif step == Step.DESCRIPTION:
        text = context.render("ads/step_description.html", min=rules(context).policy.min_description)
    elif step == Step.PRICE:
        text = context.render("ads/step_price.html", currency=s.currency, symbol=s.currency_symbol)
    elif step == Step.LOCATION:
        text = context.render("ads/step_location.html")
    elif step == Step.PHOTOS:
        top = s.category(ad.category or "")
        required = bool(top and top.photos_required)
        label = context.label("btn_done") if required or ad.photos else context.label("btn_skip_photos")
        markup = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data="ad:photos:done")]])
        text = context.render("ads/step_photos.html", max=s.max_photos, required=required)
    elif step == Step.CONTACT:
        markup = ReplyKeyboardMarkup(
            [[KeyboardButton(context.label("btn_share_phone"), request_contact=True)], [KeyboardButton(context.label("btn_contact_bot"))]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
        text = context.render("ads/step_contact.html")
    else:
        await show_preview(context, chat_id, ad)
        return
    await context.bot.send_message(chat_id, text, reply_markup=markup)


async def show_preview(context: HelpdeskContext, chat_id: int, ad: Ad) -> None:
    if ad.photos:
        try:
            await context.bot.send_photo(chat_id, ad.photos[0].file_id)
        except TelegramError as exc:
            log.info("could not show the cover photo of draft %s: %s", ad.id, exc)
    buttons = InlineKeyboardMarkup([
        [InlineKeyboardButton(context.label("btn_submit"), callback_data="ad:submit")],
        [InlineKeyboardButton(context.label("btn_edit_field"), callback_data="ad:edit"),
         InlineKeyboardButton(context.label("btn_cancel"), callback_data="ad:cancel")],
    ])
    await context.bot.send_message(
        chat_id, context.render("ads/preview.html", photos=len(ad.photos), **ad_values(context, ad)), reply_markup=buttons
    )


async def route_draft(update: Update, context: HelpdeskContext) -> bool:
    """A private message while the user is writing an ad: the answer to the current step.
    Returns False when the user has no draft in progress (the message is something else)."""
    message: Message = update.effective_message  # type: ignore[assignment]
    user_id = update.effective_user.id  # type: ignore[union-attr]
    r = rules(context)
    now = context.now()
    error: FieldError | None = None
    async with unit_of_work(context.desk.sessions) as session:
        ad = await service.current_draft(session, user_id=user_id)
        if ad is None or ad.step not in (*TEXT_STEPS, Step.PHOTOS, Step.CONTACT) or now - ad.updated_at > DRAFT_ACTIVE:
            return False
        step = Step(ad.step)
        photo_count = None
        try:
            if step in TEXT_STEPS:
                if message.text is None:
                    raise FieldError("expects_text")
                await service.set_text(session, r, ad=ad, text=message.text, now=now)
            elif step == Step.PHOTOS:
                if not message.photo:
                    if message.text is not None and message.text.startswith("/"):
                        return False
                    raise FieldError("expects_photo")
                photo_count = await service.add_photo(session, r, ad=ad, file_id=message.photo[-1].file_id, now=now)
            else:  # contact
                if message.contact is not None:
                    if message.contact.user_id not in (None, user_id):
                        raise FieldError("expects_contact")
                    await service.set_contact(session, ad=ad, phone=message.contact.phone_number, now=now)
                elif message.text == context.label("btn_contact_bot"):
                    await service.set_contact(session, ad=ad, phone=None, now=now)
                else:
                    raise FieldError("expects_contact")
        except FieldError as exc:
            error = exc
    if error is not None:
        await message.reply_html(context.render("ads/errors/field.html", code=error.code, **error.detail))
        return True
    if photo_count is not None:
        await message.reply_html(
            context.render("ads/photo_added.html", count=photo_count, max=r.settings.max_photos),
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton(context.label("btn_done"), callback_data="ad:photos:done")]]),
        )
        return True
    if step == Step.CONTACT:
        await message.reply_html("👍", reply_markup=main_menu(context))
    await prompt(context, message.chat_id, ad)
    return True


async def on_ad_button(update: Update, context: HelpdeskContext) -> None:
    """``ad:<action>[:<argument>]`` buttons of the posting conversation."""
    query = update.callback_query
    parts = query.data.split(":")  # type: ignore[union-attr]
    action, arg = parts[1], (parts[2] if len(parts) > 2 else None)
    user_id = query.from_user.id  # type: ignore[union-attr]
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    r = rules(context)
    now = context.now()
    if action == "fresh":
        async with unit_of_work(context.desk.sessions) as session:
            ad = await service.start_draft(session, r, user_id=user_id, now=now)
        await toast(query)  # type: ignore[arg-type]
        await set_markup(query, None)  # type: ignore[arg-type]
        await prompt(context, chat_id, ad)
        return
    if action == "reedit":
        ad_id, field = (int(arg or 0), parts[3] if len(parts) > 3 else None)
        async with unit_of_work(context.desk.sessions) as session:
            ad = await service.reopen_for_edit(session, ad_id=ad_id, user_id=user_id, step=field, now=now)
        if ad is None:
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
            return
        await toast(query)  # type: ignore[arg-type]
        await set_markup(query, None)  # type: ignore[arg-type]
        await prompt(context, chat_id, ad)
        return
    error: FieldError | None = None
    result = None
    told = None  # the seller's notice about the submission, queued with it
    parent = None
    async with unit_of_work(context.desk.sessions) as session:
        ad = await service.current_draft(session, user_id=user_id)
        if ad is None:
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
            return
        try:
            if action == "resume":
                ad.updated_at = now  # an active draft again: the next answers go to it
            elif action == "cat":
                if ad.step != Step.CATEGORY:
                    raise FieldError("stale")
                parent = None if arg == "-" else arg
            elif action == "sub":
                if ad.step != Step.CATEGORY:
                    raise FieldError("stale")
                await service.set_category(session, r, ad=ad, subcategory=arg or "", now=now)
            elif action == "photos":
                await service.photos_done(session, r, ad=ad, now=now)
            elif action == "submit":
                result = await service.submit(session, r, ad=ad, now=now)
                if result.outcome == SubmitOutcome.APPROVED:  # trusted and clean: live at once, the owner hears it
                    told = await owner_notice(context, session, result.ad, Decision.APPROVE, None)
                elif result.outcome == SubmitOutcome.SUBMITTED:  # "with our moderators": a second press is stale, so queued
                    told = await submitted_notice(context, session, result)
            elif action == "edit" and arg is None:
                pass
            elif action == "edit":
                await service.edit_field(session, ad=ad, step=arg or "", now=now)
            elif action == "cancel":
                await service.discard_draft(session, user_id=user_id, now=now)
            else:
                raise FieldError("stale")
        except FieldError as exc:
            error = exc
    if error is not None:
        if error.code == "posting_blocked":
            await toast(query)  # type: ignore[arg-type]
            await newad(update, context)  # explains the block, with the Appeal button
        elif error.code == "stale":
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        else:
            await toast(query)  # type: ignore[arg-type]
            await context.bot.send_message(chat_id, context.render("ads/errors/field.html", code=error.code, **error.detail))
        return
    await toast(query)  # type: ignore[arg-type]
    if action == "cat":
        await query.edit_message_reply_markup(None)  # type: ignore[union-attr]
        await prompt(context, chat_id, ad, parent=parent)
    elif action == "edit" and arg is None:
        fields = [Step.CATEGORY, Step.TITLE, Step.DESCRIPTION, Step.PRICE, Step.LOCATION, Step.PHOTOS, Step.CONTACT]
        rows = [[InlineKeyboardButton(context.label(f"field_{f.value}"), callback_data=f"ad:edit:{f.value}")] for f in fields]
        await context.bot.send_message(chat_id, context.render("ads/choose_field.html"), reply_markup=InlineKeyboardMarkup(rows))
    elif action == "cancel":
        await set_markup(query, None)  # type: ignore[arg-type]
        await context.bot.send_message(chat_id, context.render("ads/cancelled.html"), reply_markup=main_menu(context))
    elif action == "submit":
        await set_markup(query, None)  # type: ignore[arg-type]
        await after_submit(update, context, result, told)  # type: ignore[arg-type]
    else:
        await set_markup(query, None)  # type: ignore[arg-type]
        await prompt(context, chat_id, ad)


def finding_texts(context: HelpdeskContext, findings: list[Any], severities: tuple[str, ...], locale: str | None = None) -> list[Markup]:
    locale = locale or context.locale
    return [
        Markup(context.desk.templates.render(f"ads/checks/{f.code}.html", locale, **f.detail))  # noqa: S704 (rendered, escaped)
        for f in findings
        if f.severity in severities
    ]


async def submitted_notice(context: HelpdeskContext, session, result: service.SubmitResult) -> notices.Queued | None:  # type: ignore[no-untyped-def]
    """"Your ad is with our moderators" (and the pre-check's hints), queued in the unit of
    work of the submission (``session``): the seller's only word that it went through."""
    hints = finding_texts(context, result.findings, ("hint",))
    text = context.render("ads/submitted.html", number=result.ad.id, hints=hints)
    return await notices.queue(context, session, chat_id=result.ad.user_id, kind="ad_submitted", ref=f"ad:{result.ad.id}", text=text)


async def after_submit(
    update: Update, context: HelpdeskContext, result: service.SubmitResult, told: notices.Queued | None = None
) -> None:
    """After the commit: the blocking findings (a reply: nothing changed, Submit works
    again), or the notice queued with the submission, then the moderation card."""
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    if result.outcome == SubmitOutcome.BLOCKED:
        hints = finding_texts(context, result.findings, ("hint",))
        blocks = finding_texts(context, result.findings, ("block",))
        buttons = InlineKeyboardMarkup([[InlineKeyboardButton(context.label("btn_edit_field"), callback_data="ad:edit")]])
        await context.bot.send_message(chat_id, context.render("ads/blocked_findings.html", findings=blocks, hints=hints), reply_markup=buttons)
        return
    await notices.send_all(context, [told])
    await post_for_moderation(context, result.ad.id)
    if result.outcome == SubmitOutcome.APPROVED:
        await publish(context, result.ad.id)


async def cancel_command(update: Update, context: HelpdeskContext) -> None:
    """/cancel: drop the ad draft (or the support request being described)."""
    from escalation import service as tickets

    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        dropped = await service.discard_draft(session, user_id=user_id, now=context.now())
        dropped_ticket = await tickets.cancel_draft(session, user_id=user_id, now=context.now())
    template = "ads/cancelled.html" if dropped else ("ticket/cancelled.html" if dropped_ticket else "ads/nothing_to_cancel.html")
    await update.effective_message.reply_html(context.render(template), reply_markup=main_menu(context))  # type: ignore[union-attr]


# ------------------------------------------------------------------ moderation
async def _moderator(context: HelpdeskContext, user: Any, chat_id: int) -> bool:
    """A moderator acting from the staff chat: recorded as a staff member (their name on
    the cards they decide; an erasure finds them and redraws those cards)."""
    if not await is_moderator(context, user.id, chat_id):
        return False
    await remember_staff(context, user)
    return True




async def moderation_place(context: HelpdeskContext) -> tuple[int, int | None]:
    """The staff chat, and its "Moderation" topic when it is a forum (created once)."""
    chat_id = context.desk.settings.staff.chat_id
    if not context.desk.staff_chats.get(chat_id):  # type: ignore[arg-type]
        return chat_id, None  # type: ignore[return-value]
    key = f"moderation_topic:{chat_id}"
    async with unit_of_work(context.desk.sessions) as session:
        stored = await get_state(session, key)
    if stored is not None:
        return chat_id, int(stored)  # type: ignore[return-value]
    try:
        topic = await context.bot.create_forum_topic(chat_id, "Moderation")  # type: ignore[arg-type]
    except TelegramError as exc:
        log.warning("could not create the Moderation topic: %s", exc)
        return chat_id, None  # type: ignore[return-value]
    async with unit_of_work(context.desk.sessions) as session:
        await set_state(session, key, str(topic.message_thread_id))
    return chat_id, topic.message_thread_id  # type: ignore[return-value]


async def mod_card(context: HelpdeskContext, ad_id: int, decision: str | None = None, *, copy: bool = False) -> tuple[str, Ad]:
    """The moderation (or Take down) card's text; with the "posted again" line when a post
    of it timed out, unless ``copy``: the text for the first copy of such a card."""
    async with unit_of_work(context.desk.sessions) as session:
        ad = await service.get_ad(session, ad_id)
        user = await session.get(User, ad.user_id)  # type: ignore[union-attr]
        history = await service.user_history(session, user_id=ad.user_id, now=context.now())  # type: ignore[union-attr]
    flags = [
        Markup(casework.srender(context, f"ads/checks/{c.code}.html", **c.detail))  # noqa: S704 (rendered, escaped)
        for c in ad.checks  # type: ignore[union-attr]
    ]
    state = "⏳ pending" if ad.status == AdStatus.SUBMITTED else ("🤖 auto-approved" if ad.auto_approved else ad.status)  # type: ignore[union-attr]
    text = casework.srender(
        context, "ads/mod_card.html", user=user, erased_name=casework.erased_name(context, user), history=history, flags=flags, state=state,
        decision=decision, **ad_values(context, ad),  # type: ignore[arg-type]
    )
    if not copy:
        text = casework.posted_again(context, text, ad.card_timeouts)  # type: ignore[union-attr]
    return text, ad  # type: ignore[return-value]


#: How a decision reads on its card ("✅ Approved by Mo at 02 Nov 11:00"), by ad event kind.
DECIDED = {
    AdEventKind.APPROVED: "✅ Approved", AdEventKind.REJECTED: "❌ Rejected", AdEventKind.CHANGES_REQUESTED: "✏️ Changes requested",
    AdEventKind.TAKEN_DOWN: "🚫 Taken down", service.BANNED: "⛔ User banned", "upheld": "✅ Upheld", "dismissed": "✖️ Dismissed",
}


def decision_line(context: HelpdeskContext, kind: str, name: str, at: datetime, reason: str = "") -> str:
    """The line of a decided card (a moderation or report card): what, by whom, when, why."""
    return f"{DECIDED[kind]} by {name} at {casework.local_time(context, at)}{': ' + reason if reason else ''}"


async def redraw_decided_card(context: HelpdeskContext, ad_id: int) -> None:
    """Draw a decided moderation card again from the database (after its moderator was
    erased: the erased label instead of the name). Nothing when the round was not decided
    by a moderator (resubmitted since: a new card). Telegram's refusal is raised: the
    caller (:mod:`handlers.redraws`) records it."""
    async with unit_of_work(context.desk.sessions, read_only=True) as session:
        ad = await service.get_ad(session, ad_id)
        if ad is None or ad.mod_chat_id is None or ad.mod_message_id is None:
            return
        decision = await service.decision_of(session, ad)
        names = await _names(session, [ad.decided_by])
    if decision is None:
        return
    kind, reason_id = decision
    by = names.get(ad.decided_by or 0) or casework.slabel(context, "erased_staff")
    reason_cfg = context.desk.settings.ads.reason(reason_id) if reason_id else None
    reason = "" if kind in (service.BANNED, AdEventKind.TAKEN_DOWN) else (reason_cfg.label if reason_cfg else (ad.decision_note or ""))
    text, _ = await mod_card(context, ad_id, decision=decision_line(context, kind, by, ad.decided_at, reason))  # type: ignore[arg-type]
    await context.bot.edit_message_text(text, chat_id=ad.mod_chat_id, message_id=ad.mod_message_id, reply_markup=None)


def mod_keyboard(context: HelpdeskContext, ad: Ad) -> InlineKeyboardMarkup | None:
    if ad.status == AdStatus.APPROVED and ad.auto_approved:
        return InlineKeyboardMarkup([[InlineKeyboardButton(casework.slabel(context, "btn_take_down"), callback_data=f"m:down:{ad.id}")]])
    if ad.status != AdStatus.SUBMITTED:
        return None
    label = casework.slabel
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(label(context, "btn_approve_ad"), callback_data=f"m:ok:{ad.id}")],
        [InlineKeyboardButton(label(context, "btn_reject_ad"), callback_data=f"m:rej:{ad.id}"),
         InlineKeyboardButton(label(context, "btn_changes_ad"), callback_data=f"m:chg:{ad.id}")],
        [InlineKeyboardButton(label(context, "btn_ban_user"), callback_data=f"m:ban:{ad.id}")],
    ])


async def send_mod_card(
    context: HelpdeskContext, ad: Ad, place: tuple[int, int | None], text: str, markup: InlineKeyboardMarkup | None
) -> Message:
    """The moderation (or Take down) card of ``ad`` at ``place`` (chat, topic), after its
    photos. Photos Telegram confirmed in that chat before (``ads.album_*``: an earlier
    post of this submission's card) are not posted again: the card replies to them.
    Otherwise they go first, best effort (a refused album does not keep the card back),
    recorded as soon as Telegram confirms them; a card Telegram refused takes the photos
    posted with it down again (else every retry would leave one more album). When the
    photos replied to are gone from the chat (deleted), they are posted again under the
    card. Raises what the card's send raises (ChatMigrated, TimedOut, TelegramError)."""
    chat_id, topic = place
    what = f"ad #{ad.id}"
    file_ids = [p.file_id for p in ad.photos]
    known = ad.album_message_id if file_ids and ad.album_chat_id == chat_id else None
    fresh: list[Message] = []
    if file_ids and known is None:
        fresh = await casework.post_album(context, chat_id, topic, file_ids, what)
        await _keep_album(context, ad.id, fresh)
    reply = ReplyParameters(known, allow_sending_without_reply=True) if known is not None else None
    try:
        card = await delivery.readable(
            context.bot.send_message(chat_id, text, message_thread_id=topic, reply_markup=markup, reply_parameters=reply)
        )
    except (ChatMigrated, TimedOut):
        raise  # the photos stay: the card may be there (a timeout), or follows the move
    except TelegramError:
        if fresh:
            await casework.drop_album(context, fresh, what)
            async with unit_of_work(context.desk.sessions) as session:
                await service.forget_album(session, ad_id=ad.id, chat_id=chat_id, message_ids=[m.message_id for m in fresh])
        raise
    # (in a forum topic Telegram gives a message that replies to nothing the topic's own
    # service message as reply_to_message: only the album itself counts)
    replied = card.reply_to_message.message_id if card.reply_to_message is not None else None
    if known is not None and replied != known:
        log.info("the photos of %s were gone from the staff chat: posted again under its card", what)
        await _keep_album(context, ad.id, await casework.post_album(context, chat_id, topic, file_ids, what, under=card.message_id))
    return card


async def _keep_album(context: HelpdeskContext, ad_id: int, album: list[Message]) -> None:
    if album:
        async with unit_of_work(context.desk.sessions) as session:
            await service.keep_album(session, ad_id=ad_id, chat_id=album[0].chat_id, message_ids=[m.message_id for m in album])


async def post_for_moderation(context: HelpdeskContext, ad_id: int, *, moved: bool = False, again: bool = False) -> bool:
    """The ad's moderation card (after its photos: :func:`send_mod_card`), or the Take
    down card of an auto-approved ad. Posting is claimed first (``ads.card_claimed_at``),
    so that of this handler and the sweep (:func:`repair_cards`) only one posts it. A
    card Telegram surely refused is left for the sweep; one that timed out may have
    arrived: the sweep posts it again (``again``: as a reply to the photos posted with the
    first try) after the repair grace, a bounded number of times
    (:mod:`bot.card_retries`); a staff chat that became a supergroup is followed once
    (``moved``: it was already). True when posted."""
    chat_id, topic = await moderation_place(context)
    text, ad = await mod_card(context, ad_id)  # drawn before the claim: after it, only sends
    async with unit_of_work(context.desk.sessions) as session:
        if again:
            claimed = await casework.claim_card_again(context, session, service.AD_CARDS, ad_id)
        else:
            claimed = await service.claim_moderation_card(session, ad_id=ad_id, now=context.now())
        if not claimed:
            log.info("the moderation card of ad #%s is posted by another sender (or was): not posted again", ad_id)
            return False
    try:
        card = await send_mod_card(context, ad, (chat_id, topic), text, mod_keyboard(context, ad))
    except ChatMigrated as exc:
        await _release_moderation_card(context, ad_id)  # surely not there
        if moved:
            log.error("the staff chat moved twice in a row; ad #%s is left for the sweep", ad_id)
            return False
        await delivery.chat_moved(context, chat_id, exc.new_chat_id)
        return await post_for_moderation(context, ad_id, moved=True)  # the settings now name the new chat
    except TimedOut as exc:  # or unreadable (delivery.Unreadable); it may have arrived: the sweep posts it again after the grace
        await casework.card_timed_out(context, service.AD_CARDS, ad_id, f"ad #{ad_id}", exc)
        return False
    except TelegramError as exc:
        log.error("could not post ad #%s for moderation (the sweep tries again): %s", ad_id, exc)
        await _release_moderation_card(context, ad_id)
        return False
    async with unit_of_work(context.desk.sessions) as session:
        await service.attach_moderation_card(session, ad_id=ad_id, chat_id=chat_id, message_id=card.message_id)
    return True


async def repost_moderation_card(context: HelpdeskContext, ad_id: int) -> casework.Repost:
    """/repost ad N: the moderation card of an ad waiting for a moderator, or the Take
    down card of a live auto-approved ad, posted again in the Moderation place (as a
    reply to its photos when they are there, else after them: :func:`send_mod_card`)
    and tracked from now on (:func:`handlers.casework.repost`)."""
    async with unit_of_work(context.desk.sessions) as session:
        claimed = await card_retries.claim_repost(session, service.AD_CARDS, ad_id, now=context.now())
        ad = await service.get_ad(session, ad_id)
    if ad is None or ad.submitted_at is None:  # a draft never submitted is the owner's alone
        return casework.Repost(casework.Reposted.NOT_FOUND)
    if claimed is None:  # decided, withdrawn, or live after a moderator's approval: no card to act on
        status = "moderated" if ad.status == AdStatus.APPROVED else ad.status
        return casework.Repost(casework.Reposted.FINISHED, status=status)
    place = await moderation_place(context)
    text, ad = await mod_card(context, ad_id)

    async def attach(session, card: Message) -> None:  # type: ignore[no-untyped-def]
        await service.attach_moderation_card(session, ad_id=ad_id, chat_id=card.chat_id, message_id=card.message_id)

    async def release(session) -> None:  # type: ignore[no-untyped-def]
        await service.release_moderation_card(session, ad_id=ad_id)

    markup = mod_keyboard(context, ad)
    done = await casework.repost(
        context, service.AD_CARDS, ad_id, claimed, place, text, markup,
        attach=attach, release=release, send=lambda: send_mod_card(context, ad, place, text, markup),
    )
    return casework.Repost(done.outcome, ad.status, done.message, done.error)


async def repost_report_card(context: HelpdeskContext, report_id: int) -> casework.Repost:
    """/repost report N: an open report's card posted again, tracked from now on."""
    from ads.models import AdReport

    async with unit_of_work(context.desk.sessions) as session:
        claimed = await card_retries.claim_repost(session, service.REPORT_CARDS, report_id, now=context.now())
        report = await session.get(AdReport, report_id)
    if report is None:
        return casework.Repost(casework.Reposted.NOT_FOUND)
    if claimed is None:
        return casework.Repost(casework.Reposted.FINISHED, status=report.status)
    place = await moderation_place(context)
    text, _ = await report_card(context, report_id)

    async def attach(session, card: Message) -> None:  # type: ignore[no-untyped-def]
        await service.attach_report_card(session, report_id=report_id, chat_id=card.chat_id, message_id=card.message_id)

    async def release(session) -> None:  # type: ignore[no-untyped-def]
        await service.release_report_card(session, report_id=report_id)

    return await casework.repost(
        context, service.REPORT_CARDS, report_id, claimed, place, text, _report_buttons(context, report_id), attach=attach, release=release
    )


async def _release_moderation_card(context: HelpdeskContext, ad_id: int) -> None:
    async with unit_of_work(context.desk.sessions) as session:
        await service.release_moderation_card(session, ad_id=ad_id)


async def repair_cards(context: HelpdeskContext) -> tuple[int, int]:
    """The sweep: post the moderation card of every ad waiting for a moderator (and the
    Take down card of every auto-approved ad that is live), and the card of every open
    report, that never got one (the bot stopped between the commit and the card,
    Telegram refused it, or the staff chat moved and the bot stopped before posting it
    again). Older than the repair grace only, so that a handler posting one right now
    goes first; claimed first, so racing senders post nothing twice. A card whose post
    timed out is posted again, a bounded number of times, then moderators are told once
    (:mod:`bot.card_retries`). Returns (moderation cards, report cards) posted."""
    desk = context.desk
    before = context.now() - casework.repair_grace(context)
    async with unit_of_work(desk.sessions) as session:
        ad_ids = await service.ads_without_card(session, before=before)
        report_ids = await service.reports_without_card(session, before=before)
        ads_again = await card_retries.due_again(session, service.AD_CARDS, before=before)
        reports_again = await card_retries.due_again(session, service.REPORT_CARDS, before=before)
    missing = "(the bot stopped before posting it, or it was refused): posting it now"
    timed_out = "timed out, so it may be missing: posting it again"
    ads = await _post_cards(
        ad_ids, "ad #", lambda i: post_for_moderation(context, i),
        f"ad #%s waits for moderation with no card, or auto-approved for its Take down card {missing}",
    ) + await _post_cards(ads_again, "ad #", lambda i: post_for_moderation(context, i, again=True), f"posting the card of ad #%s {timed_out}")
    reports = await _post_cards(
        report_ids, "report ", lambda i: post_report_card(context, i), f"report %s has no card {missing}"
    ) + await _post_cards(reports_again, "report ", lambda i: post_report_card(context, i, again=True), f"posting the card of report %s {timed_out}")
    await casework.report_lost_cards(context, service.AD_CARDS, _lost_ad_card)
    await casework.report_lost_cards(context, service.REPORT_CARDS, _lost_report_card)
    return ads, reports


async def _post_cards(ids: list[int], label: str, post: Callable[[int], Awaitable[bool]], why: str) -> int:
    """One of :func:`repair_cards`' four kinds of post: each card logged (``why`` % id)
    and posted, an exception logged and the loop going on (:func:`handlers.ui.guarded`).
    Returns how many were posted."""
    posted = 0
    for item_id in ids:
        log.warning(why, item_id)
        if await guarded(f"posting the card of {label}{item_id}", post(item_id)):
            posted += 1
    return posted


async def _lost_ad_card(context: HelpdeskContext, session: AsyncSession, ad_id: int) -> notices.Queued | None:
    """The line about a lost moderation (or Take down) card, queued for the Moderation
    topic (looked up when sent); it names the ad's title: erased with its owner."""
    ad = await service.get_ad(session, ad_id)
    kind = "ad" if ad is None or ad.status == AdStatus.SUBMITTED else "take_down"
    html = casework.srender(
        context, "staff/card_lost.html", kind=kind, number=ad_id, title=ad.title if ad else "", attempts=card_retries.ATTEMPTS
    )
    return await notices.queue_for_moderators(
        context, session, kind="card_lost", ref=f"ad:{ad_id}", text=html, person_id=ad.user_id if ad else None
    )


async def _lost_report_card(context: HelpdeskContext, session: AsyncSession, report_id: int) -> notices.Queued | None:
    from ads.models import AdReport

    report = await session.get(AdReport, report_id)
    html = casework.srender(
        context, "staff/card_lost.html", kind="report", number=report_id, ad=report.ad_id if report else "?", attempts=card_retries.ATTEMPTS
    )
    return await notices.queue_for_moderators(context, session, kind="card_lost", ref=f"report:{report_id}", text=html)


async def show_decided(
    context: HelpdeskContext, query: Any, card: tuple[int | None, int | None], text: str, copy_text: str, what: str
) -> None:
    """A decision on a card: the tracked card (``card``: chat and message id) shows it,
    without buttons; so does the pressed message when it is another copy (the first post
    of a card that timed out but arrived, after the card was posted again), or when no
    card is tracked at all. Best effort: the decision is stored."""
    chat_id, message_id = card
    pressed = query.message if query is not None else None
    if chat_id is not None and message_id is not None:
        try:
            await context.bot.edit_message_text(text, chat_id=chat_id, message_id=message_id, reply_markup=None)
        except TelegramError as exc:
            log.warning("could not update the card of %s: %s", what, exc)
    if pressed is None or (pressed.chat.id, pressed.message_id) == (chat_id, message_id):
        return
    try:
        await query.edit_message_text(copy_text, reply_markup=None)
    except TelegramError as exc:
        log.info("could not update a copy of the card of %s: %s", what, exc)


async def on_mod_button(update: Update, context: HelpdeskContext) -> None:
    """``m:ok:<ad>``, ``m:rej:<ad>``, ``m:chg:<ad>``, ``m:r:<ad>:<reason>``, ``m:c:<ad>:<reason>``, ``m:back:<ad>``."""
    query = update.callback_query
    parts = query.data.split(":")  # type: ignore[union-attr]
    action, ad_id = parts[1], int(parts[2])
    moderator = query.from_user  # type: ignore[union-attr]
    if not await _moderator(context, moderator, update.effective_chat.id):  # type: ignore[union-attr]
        log.warning("refused a moderation action by %s on ad %s", moderator.id, ad_id)
        await toast(query, casework.slabel(context, "toast_not_moderator"))  # type: ignore[arg-type]
        return
    settings = context.desk.settings.ads
    async with unit_of_work(context.desk.sessions) as session:
        ad = await service.get_ad(session, ad_id)
    # the button's ad id is untrusted: it must name an ad that went through moderation
    # (a Ban confirmed after another moderator approved it still applies)
    allowed = (AdStatus.SUBMITTED, AdStatus.APPROVED) if action == "banok" else (AdStatus.SUBMITTED,)
    if ad is None or ad.submitted_at is None or (action in ("ro", "co", "banok") and ad.status not in allowed):
        log.warning("refused moderation action %s by %s on ad %s: no such ad waiting", action, moderator.id, ad_id)
        await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        return
    if action in ("ro", "co"):
        await ask_other_reason(update, context, ad_id, "r" if action == "ro" else "c")
        return
    if action == "banok":
        await ban_from_card(update, context, ad_id)
        return
    if action in ("rej", "chg", "back", "ban"):
        text, ad = await mod_card(context, ad_id)
        if ad.status != AdStatus.SUBMITTED:
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
            return
        await toast(query)  # type: ignore[arg-type]
        if action == "back":
            markup = mod_keyboard(context, ad)
        elif action == "ban":
            markup = InlineKeyboardMarkup([
                [InlineKeyboardButton(casework.slabel(context, "btn_confirm_ban"), callback_data=f"m:banok:{ad_id}")],
                [InlineKeyboardButton(casework.slabel(context, "btn_back"), callback_data=f"m:back:{ad_id}")],
            ])
        else:
            kind = "r" if action == "rej" else "c"
            rows = [[InlineKeyboardButton(r.label, callback_data=f"m:{kind}:{ad_id}:{r.id}")] for r in settings.reject_reasons]
            rows.append([InlineKeyboardButton(casework.slabel(context, "btn_other_reason"), callback_data=f"m:{kind}o:{ad_id}")])
            rows.append([InlineKeyboardButton(casework.slabel(context, "btn_back"), callback_data=f"m:back:{ad_id}")])
            markup = InlineKeyboardMarkup(rows)
        await set_markup(query, markup)  # type: ignore[arg-type]
        return
    decision = {"ok": Decision.APPROVE, "r": Decision.REJECT, "c": Decision.CHANGES}[action]
    reason = parts[3] if len(parts) > 3 else None
    if reason is not None and settings.reason(reason) is None:
        await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        return
    await apply_decision(update, context, ad_id, decision, reason, None)


async def apply_decision(
    update: Update, context: HelpdeskContext, ad_id: int, decision: Decision, reason: str | None, note: str | None, *, consume: str | None = None
) -> None:
    """Store a moderator's decision (atomically), update the card, tell the owner.
    ``consume``: an app_state key (the "Other…" wait) deleted in the same transaction."""
    query = update.callback_query
    moderator = update.effective_user
    settings = context.desk.settings.ads
    reason_cfg = settings.reason(reason) if reason else None
    penalty = None
    pattern = 0
    async with unit_of_work(context.desk.sessions) as session:
        if consume is not None:
            from bot.models import AppState

            waiting = await session.get(AppState, consume)
            if waiting is not None:
                await session.delete(waiting)
        result = await service.decide(
            session, rules(context), ad_id=ad_id, moderator_id=moderator.id, decision=decision, reason=reason, note=note, now=context.now()  # type: ignore[union-attr]
        )
        names = await _names(session, [result.ad.decided_by])
        if result.won and decision == Decision.REJECT and reason_cfg is not None:
            if reason_cfg.strike:
                penalty = await strikes.add_strike(
                    session, rules(context), user_id=result.ad.user_id, reason=reason_cfg.label, ad_id=ad_id,
                    moderator_id=moderator.id, now=context.now(),
                )
            pattern = await strikes.rejections_for_reason(session, user_id=result.ad.user_id, reason=reason_cfg.id, now=context.now())
        queued = []
        if result.won:  # the owner hears it: queued with the decision, sent after the commit
            queued.append(await owner_notice(context, session, result.ad, decision, reason, note))
            if penalty is not None and penalty.action is not None:
                queued.append(await penalty_notice(context, session, result.ad.user_id, penalty, reason_cfg.label, reason_cfg.rule))  # type: ignore[union-attr]
            if pattern >= strikes.PATTERN_COUNT:  # the moderators hear it too, the same way
                queued.append(await pattern_alert(context, session, result.ad.user_id, pattern, reason_cfg.label))  # type: ignore[union-attr]
    if not result.won:
        refusal = casework.slabel(context, "toast_decided", status=result.ad.status, name=names.get(result.ad.decided_by or 0, "someone"))
        if query is not None:
            await toast(query, refusal)
            await drop_stale_copy(query, result.ad.mod_chat_id, result.ad.mod_message_id)
        else:
            await update.effective_message.reply_html(casework.srender(context, "staff/error.html", message=refusal))  # type: ignore[union-attr]
        return
    if query is not None:
        await toast(query, casework.slabel(context, "toast_done"))
    kind = {Decision.APPROVE: AdEventKind.APPROVED, Decision.REJECT: AdEventKind.REJECTED, Decision.CHANGES: AdEventKind.CHANGES_REQUESTED}[decision]
    reason_label = settings.reason(reason).label if reason else (note or "")  # type: ignore[union-attr]
    line = decision_line(context, kind, moderator.first_name, context.now(), reason_label)  # type: ignore[union-attr]
    text, ad = await mod_card(context, ad_id, decision=line)
    copy_text, _ = await mod_card(context, ad_id, decision=line, copy=True)
    await show_decided(context, query, (ad.mod_chat_id, ad.mod_message_id), text, copy_text, f"ad #{ad_id}")
    if penalty is not None and penalty.action is not None:
        context.desk.accounts.pop(ad.user_id, None)  # the cached status is stale now
    await notices.send_all(context, queued)
    if decision == Decision.APPROVE:
        await publish(context, ad_id)


async def pattern_alert(context: HelpdeskContext, session, user_id: int, count: int, reason: str) -> notices.Queued | None:  # type: ignore[no-untyped-def]
    """"⚠️ Pattern": the user's ads were rejected ``count`` times for ``reason`` within a
    week. Queued for the moderators in the unit of work of the rejection (``session``),
    so that a crash after its commit does not lose it (the sweep posts it)."""
    owner = await session.get(User, user_id)
    text = casework.srender(context, "ads/pattern_alert.html", name=owner.display_name if owner else "?", user_id=user_id, count=count, reason=reason)
    return await notices.queue_for_moderators(context, session, kind="pattern_alert", text=text, ref=f"user:{user_id}")


OTHER_KEY = "mod_other:{chat}:{user}"  # bot.chats.OTHER_REASON moves it with the chat
OTHER_WAIT = timedelta(minutes=15)  # how long an "Other…" press waits for the typed reason


async def ask_other_reason(update: Update, context: HelpdeskContext, ad_id: int, kind: str) -> None:
    """"Other…": the moderator's next message in this chat (in the card's topic, within
    :data:`OTHER_WAIT`) is the reason (kept in the database, so a restart in between
    loses nothing). Stored as ``kind:ad:thread:unix time``."""
    query = update.callback_query
    chat_id, moderator = update.effective_chat.id, update.effective_user  # type: ignore[union-attr]
    thread = query.message.message_thread_id if query.message and query.message.is_topic_message else None  # type: ignore[union-attr]
    value = f"{kind}:{ad_id}:{thread if thread is not None else ''}:{int(context.now().timestamp())}"
    async with unit_of_work(context.desk.sessions) as session:
        await set_state(session, OTHER_KEY.format(chat=chat_id, user=moderator.id), value)  # type: ignore[union-attr]
    await toast(query)  # type: ignore[arg-type]
    minutes = int(OTHER_WAIT.total_seconds() // 60)
    text = casework.srender(context, "ads/type_reason.html", name=moderator.first_name, number=ad_id, minutes=minutes)  # type: ignore[union-attr]
    await context.bot.send_message(chat_id, text, message_thread_id=thread)


async def take_typed_reason(update: Update, context: HelpdeskContext) -> bool:
    """A moderator's message that answers "Other…". True when it was that.

    Only a message in the moderation card's place (its topic, if any) within
    :data:`OTHER_WAIT` of the press, and never one meant for a ticket (a reply to a
    ticket's card or messages, or in a ticket's topic: the caller routes those first,
    and this checks again). An expired wait is dropped and nothing is sent. The wait
    is consumed in the same transaction as the decision."""
    from bot.models import AppState
    from handlers.staff import _ticket_here

    message, user = update.effective_message, update.effective_user
    if message is None or user is None or not message.text or message.text.startswith("/"):
        return False
    key = OTHER_KEY.format(chat=message.chat_id, user=user.id)
    async with unit_of_work(context.desk.sessions, effect=False) as session:
        pending = await get_state(session, key)
    if pending is None:
        return False
    parts = pending.split(":")
    expired = len(parts) != 4 or not parts[3].isdigit() or (
        context.now() - datetime.fromtimestamp(int(parts[3]), tz=timezone.utc) > OTHER_WAIT
    )
    if expired:
        async with unit_of_work(context.desk.sessions, effect=False) as session:
            row = await session.get(AppState, key)
            if row is not None:
                await session.delete(row)
        return False
    kind, ad_id, thread = parts[0], parts[1], parts[2]
    here = message.message_thread_id if message.is_topic_message else None
    if (str(here) if here is not None else "") != thread:
        return False  # another topic of the chat: not an answer to the card
    if await _ticket_here(context, message) is not None:
        return False  # a ticket reply, never a moderation reason
    if not await _moderator(context, user, message.chat_id):
        return False
    await apply_decision(
        update, context, int(ad_id), Decision.REJECT if kind == "r" else Decision.CHANGES, None, message.text[:500], consume=key
    )
    return True


async def forget_typed_reason(context: HelpdeskContext, *, chat_id: int, user_id: int) -> bool:
    """The staff /cancel: a pending "Other…" wait goes. True if there was one."""
    from bot.models import AppState

    async with unit_of_work(context.desk.sessions, effect=False) as session:  # the /cancel reply is the effect
        row = await session.get(AppState, OTHER_KEY.format(chat=chat_id, user=user_id))
        if row is not None:
            await session.delete(row)
    return row is not None


def appeal_button(context: HelpdeskContext, locale: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(context.desk.templates.label(locale, "btn_appeal"), callback_data="ap:new")]])


async def penalty_notice(
    context: HelpdeskContext, session, user_id: int, penalty: strikes.Penalty, reason: str, rule: str | None,  # type: ignore[no-untyped-def]
    *, ref: str | None = None,
) -> notices.Queued | None:
    """The user hears a penalty (warning, posting blocked, ban) with an Appeal button:
    queued in the unit of work of the strike (``session``), sent after the commit."""
    locale = await casework.user_locale(context, user_id)
    text = context.desk.templates.render(
        "ads/penalty.html", locale, action=penalty.action, strikes=penalty.strikes, reason=reason, rule=rule,
        until=casework.local_time(context, penalty.until) if penalty.until else None, days=context.desk.settings.ads.strike_days,
    )
    markup = appeal_button(context, locale) if penalty.action in ("block", "ban", "warn") else None
    return await notices.queue(
        context, session, chat_id=user_id, kind=f"penalty_{penalty.action}", ref=ref or f"strike:{penalty.strike_id}", text=text, markup=markup
    )


async def ban_from_card(update: Update, context: HelpdeskContext, ad_id: int) -> None:
    """``m:banok:<ad>``: the ad is rejected (if still pending) and its owner banned."""
    query = update.callback_query
    moderator = query.from_user  # type: ignore[union-attr]
    now = context.now()  # one time for the decision and the ban: a redraw of the card recognises the ban by it
    async with unit_of_work(context.desk.sessions) as session:
        ad = await service.get_ad(session, ad_id)
        if ad is None:
            await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
            return
        await service.decide(
            session, rules(context), ad_id=ad_id, moderator_id=moderator.id, decision=Decision.REJECT, reason="scam",
            note="user banned", now=now,
        )
        live = await service.take_down(session, ad_id=ad_id, moderator_id=moderator.id, now=now)  # approved meanwhile
        user = await strikes.ban(
            session, user_id=ad.user_id, reason=f"ad #{ad_id}: banned by a moderator", now=now,
            moderator_id=update.effective_user.id,  # type: ignore[union-attr]
        )
        locale = await casework.user_locale(context, ad.user_id)
        text = context.desk.templates.render("ads/banned_notice.html", locale, reason=user.status_reason if user else None)
        queued = await notices.queue(
            context, session, chat_id=ad.user_id, kind="penalty_ban", ref=f"ad:{ad_id}", text=text, markup=appeal_button(context, locale)
        )
    if live is not None and live[1] is not None:
        await unpublish(context, ad_id)
    context.desk.accounts.pop(ad.user_id, None)
    await toast(query, casework.slabel(context, "toast_done"))  # type: ignore[arg-type]
    line = decision_line(context, service.BANNED, moderator.first_name, now)
    text, ad = await mod_card(context, ad_id, decision=line)
    copy_text, _ = await mod_card(context, ad_id, decision=line, copy=True)
    await show_decided(context, query, (ad.mod_chat_id, ad.mod_message_id), text, copy_text, f"ad #{ad_id}")
    await notices.send_all(context, [queued])


async def on_appeal(update: Update, context: HelpdeskContext) -> None:
    """``ap:new``: an appeal against a penalty becomes a ticket of category "appeal"."""
    from escalation import service as tickets
    from handlers.tickets import after_intake, queue_intake

    query = update.callback_query
    async with unit_of_work(context.desk.sessions) as session:
        intake = await tickets.open_request(
            session, context.desk.policy, user_id=query.from_user.id, category="appeal", question_id=None, now=context.now()  # type: ignore[union-attr]
        )
        queued = await queue_intake(context, session, intake)
    await toast(query)  # type: ignore[arg-type]
    await set_markup(query, None)  # type: ignore[arg-type]
    await after_intake(update, context, intake, queued)


async def banned_gate(update: Update, context: HelpdeskContext) -> bool:
    """Group -1 for a banned user: only appeals and their support cases go through.
    Returns True when the update was answered here (and must stop)."""
    from escalation.service import has_case

    query = update.callback_query
    if query is not None and (query.data or "").startswith(("ap:", "tk:", "r:", "pv:")):
        return False
    message = update.effective_message
    if query is None and message is not None and (message.text or "").split(maxsplit=1)[:1] in (["/mydata"], ["/deleteme"]):
        return False  # personal-data rights hold for everyone
    if query is None:
        async with unit_of_work(context.desk.sessions) as session:
            if await has_case(session, user_id=update.effective_user.id):  # type: ignore[union-attr]
                return False
    async with unit_of_work(context.desk.sessions) as session:
        user = await session.get(User, update.effective_user.id)  # type: ignore[union-attr]
    if query is not None:
        await toast(query)
    await context.bot.send_message(
        update.effective_chat.id,  # type: ignore[union-attr]
        context.render("ads/banned_notice.html", reason=user.status_reason if user else None),
        reply_markup=appeal_button(context, context.locale),
    )
    return True


async def _names(session, ids: list[int | None]) -> dict[int, str]:  # type: ignore[no-untyped-def]
    from escalation.service import staff_names

    return await staff_names(session, [i for i in ids if i])


async def owner_notice(
    context: HelpdeskContext, session, ad: Ad, decision: Decision, reason_id: str | None, note: str | None = None  # type: ignore[no-untyped-def]
) -> notices.Queued | None:
    """The owner hears the decision: queued in the decision's unit of work (``session``),
    rendered in their language; sent after the commit (:func:`handlers.notices.send_all`)."""
    locale = await casework.user_locale(context, ad.user_id)
    templates = context.desk.templates
    reason = context.desk.settings.ads.reason(reason_id) if reason_id else None
    values = {"number": ad.id, "title": ad.title}
    markup = None
    if decision == Decision.APPROVE:
        expires = casework.local_time(context, ad.expires_at)
        text = templates.render("ads/approved.html", locale, expires=expires, **values, **ad_values(context, ad))
    else:
        field = reason.field if reason and reason.field else "preview"
        label = "btn_fix" if decision == Decision.CHANGES else "btn_edit_and_resubmit"
        markup = InlineKeyboardMarkup([[InlineKeyboardButton(templates.label(locale, label), callback_data=f"ad:reedit:{ad.id}:{field}")]])
        template = "ads/changes.html" if decision == Decision.CHANGES else "ads/rejected.html"
        text = templates.render(
            template, locale, reason=reason.label if reason else (note or ""), rule=reason.rule if reason else "",
            fix=reason.fix if reason else "", **values,
        )
    kind = {Decision.APPROVE: "ad_approved", Decision.REJECT: "ad_rejected", Decision.CHANGES: "ad_changes"}[decision]
    return await notices.queue(context, session, chat_id=ad.user_id, kind=kind, ref=f"ad:{ad.id}", text=text, markup=markup)


def _bounded(failures: int) -> int:
    """Log level for the n-th refusal in a row of one ad's post: loud at the 1st, 10th,
    100th... quiet in between (a channel that keeps refusing is retried every sweep)."""
    return logging.WARNING if failures > 0 and 10 ** len(str(failures)) // 10 == failures else logging.DEBUG


async def publish(context: HelpdeskContext, ad_id: int) -> bool:
    """An approved ad goes to the channel, when one is configured: claimed first (one
    poster), the photo (if any) then the text, each recorded as sent. A refusal releases
    the claim for a later sweep (staff are told once that the channel refuses posts); a
    timeout leaves it claimed: the post may have arrived, it is never posted twice.
    True when the ad is posted now."""
    desk = context.desk
    channel = desk.settings.ads.channel_id
    if channel is None:
        return False
    await unpublish(context, ad_id)  # approved afresh while the post of its earlier life is still there
    async with unit_of_work(desk.sessions, effect=False) as session:
        ad = await service.claim_publish(session, ad_id=ad_id, now=context.now())
    if ad is None:  # not approved (any more), posted, or being posted by someone else
        return False
    text = desk.templates.render("ads/ad.html", desk.templates.default, **ad_values(context, ad))
    step = "photo"
    try:
        if ad.photos and ad.published_photo_id is None:  # a retry after a refused text keeps the photo posted before
            photo = await context.bot.send_photo(channel, ad.photos[0].file_id)
            async with unit_of_work(desk.sessions, effect=False) as session:
                await service.set_published_photo(session, ad_id=ad_id, chat_id=channel, message_id=photo.message_id)
        step = "text"
        link = f"https://t.me/{context.bot.username}?start=report-{ad_id}"
        report = InlineKeyboardMarkup([[InlineKeyboardButton(desk.templates.label(desk.templates.default, "btn_report_ad"), url=link)]])
        posted = await context.bot.send_message(channel, text, reply_markup=report)
    except TimedOut:
        async with unit_of_work(desk.sessions, effect=False) as session:
            await service.publish_uncertain(session, ad_id=ad_id)
        log.error(
            "posting ad %s to the channel %s timed out (%s); it may have arrived: left as being posted, never posted again "
            "(posted afresh only after the ad is approved or renewed again)", ad_id, channel, step,
        )
        return False
    except TelegramError as exc:
        alert = None
        async with unit_of_work(desk.sessions, effect=False) as session:
            failures = await service.release_publish(session, ad_id=ad_id)
            if not isinstance(exc, RetryAfter) and await service.channel_refuses(session, reason=exc.message):
                # the moderators are told once: queued with the flag that says so (sent
                # below, or by the sweep if the bot stops first)
                html = casework.srender(context, "ads/channel_refused.html", channel=channel, number=ad_id, reason=exc.message)
                alert = await notices.queue_for_moderators(context, session, kind="channel_refused", text=html, ref=f"ad:{ad_id}")
        log.log(_bounded(failures), "the channel %s refused ad %s (%s, %d times in a row): %s; the sweep tries again", channel, ad_id, step, failures, exc.message)
        await notices.send_all(context, [alert])
        return False
    async with unit_of_work(desk.sessions, effect=False) as session:
        live = await service.set_published(session, ad_id=ad_id, chat_id=channel, message_id=posted.message_id)
    if not live:  # taken off while it was being posted: off the channel again
        await unpublish(context, ad_id)
    return live


def already_deleted(exc: TelegramError) -> bool:
    """Telegram refused to delete a message it no longer has (deleted by hand, or before)."""
    return "message to delete not found" in exc.message.lower()


def too_old_to_delete(exc: TelegramError) -> bool:
    """Bots may delete a message only within 48 hours of sending it: an ad that expires,
    sells or is taken down later cannot have its post deleted (nor its photos in the
    staff chat, when its owner is erased)."""
    return "message can't be deleted" in exc.message.lower()


async def _withdraw_post(context: HelpdeskContext, chat_id: int, message_id: int, number: int, *, photo: bool) -> TelegramError | None:
    """A post too old to delete is edited instead (bots may edit their own posts at any
    time): "no longer available" and no Report button; a photo gets that as its caption.
    None when done (or the post is gone); the error when Telegram refused the edit too."""
    text = context.desk.templates.render("ads/channel_withdrawn.html", context.desk.templates.default, number=number)
    try:
        if photo:
            await context.bot.edit_message_caption(chat_id=chat_id, message_id=message_id, caption=text, reply_markup=None)
        else:
            await context.bot.edit_message_text(text, chat_id=chat_id, message_id=message_id, reply_markup=None)
    except TelegramError as exc:
        reason = exc.message.lower()
        if "message is not modified" in reason or "message to edit not found" in reason:
            return None  # withdrawn already, or gone
        return exc
    return None


async def unpublish(context: HelpdeskContext, ad_id: int) -> bool:
    """The ad is no longer approved (or approved afresh with the post of its earlier life
    still there: :func:`ads.service.to_remove`): its channel post (and photo) are deleted,
    then its post ids forgotten. A post already gone counts as deleted; one older than
    Telegram's 48 hours for deleting is edited to "no longer available" instead; another
    refusal leaves the ids for a later sweep. True when there is no post to remove any more."""
    desk = context.desk
    async with unit_of_work(desk.sessions, read_only=True) as session:
        ad = await service.get_ad(session, ad_id)
    if ad is None or not service.to_remove(ad):
        return True
    chat_id, message_id, photo_id = ad.published_chat_id, ad.published_message_id, ad.published_photo_id
    refused: TelegramError | None = None
    for target in (message_id, photo_id):
        if target is None:
            continue
        try:
            await context.bot.delete_message(chat_id, target)  # type: ignore[arg-type]
        except TelegramError as exc:
            if too_old_to_delete(exc):
                failed = await _withdraw_post(context, chat_id, target, ad_id, photo=target == photo_id)  # type: ignore[arg-type]
                refused = failed or refused
            elif not already_deleted(exc):
                refused = exc
    async with unit_of_work(desk.sessions, effect=False) as session:
        if refused is None:
            await service.post_removed(session, ad_id=ad_id, chat_id=chat_id, message_id=message_id, photo_id=photo_id)  # type: ignore[arg-type]
            return True
        failures = await service.removal_failed(session, ad_id=ad_id)
    log.log(
        _bounded(failures), "could not delete the channel post of ad %s (%s/%s, %d times in a row): %s; the sweep tries again",
        ad_id, chat_id, message_id or photo_id, failures, refused.message,
    )
    return False


async def repair_channel(context: HelpdeskContext) -> tuple[int, int]:
    """From the periodic sweep: remove the posts that must go (ads no longer approved, or
    approved afresh with an earlier post still there); mark the posts whose poster died
    mid-post as uncertain (logged once, never posted again); then post the approved ads a
    crash or a refusal left unposted (approved longer than the repair grace ago: the
    handler posting one right now goes first; while the channel refuses, one ad per sweep
    probes it). Each ad is tried at most once per sweep.
    Returns (ads posted, posts removed)."""
    desk = context.desk
    before = context.now() - casework.repair_grace(context)
    posted = removed = 0
    async with unit_of_work(desk.sessions, read_only=True) as session:
        ids = await service.posts_to_remove(session, before=before)
    for ad_id in ids:
        log.info("the channel post of ad %s must go (the ad is no longer live, or live afresh): removing it now", ad_id)
        removed += bool(await guarded(f"removing the channel post of ad {ad_id}", unpublish(context, ad_id)))
    async with unit_of_work(desk.sessions) as session:
        stuck = await service.stuck_posts(session, before=context.now() - casework.stuck_grace(context))
    for ad_id in stuck:
        log.error(
            "ad %s was being posted to the channel when the bot stopped; it may have arrived: marked uncertain, never posted again",
            ad_id,
        )
    if desk.settings.ads.channel_id is not None:
        async with unit_of_work(desk.sessions, read_only=True) as session:
            refusing = await service.channel_refusing(session)
            ids = await service.unposted(session, before=before, limit=1 if refusing else 20)
        for ad_id in ids:
            log.info("approved ad %s is not in the channel yet: posting it now", ad_id)
            posted += bool(await guarded(f"posting ad {ad_id} to the channel", publish(context, ad_id)))
    return posted, removed


# ------------------------------------------------------------------ moderator commands


async def _moderator_or_refuse(update: Update, context: HelpdeskContext) -> bool:
    user, chat = update.effective_user, update.effective_chat
    if user is not None and chat is not None and await _moderator(context, user, chat.id):
        return True
    log.warning("refused a moderator command by %s", user.id if user else None)
    await update.effective_message.reply_html(casework.srender(context, "staff/error.html", message=casework.slabel(context, "toast_not_moderator")))  # type: ignore[union-attr]
    return False


moderator_or_refuse = _moderator_or_refuse  # for /repost (handlers/staff.py)


async def _user_arg(update: Update, context: HelpdeskContext, usage: str) -> User | None:
    args = list(context.args or [])
    if not args:
        await update.effective_message.reply_html(casework.srender(context, "staff/error.html", message=usage))  # type: ignore[union-attr]
        return None
    async with unit_of_work(context.desk.sessions) as session:
        user = await strikes.find_user(session, args[0])
    if user is None:
        await update.effective_message.reply_html(casework.srender(context, "staff/error.html", message=f"I don't know the user {casework.clip(args[0], 64)}."))  # type: ignore[union-attr]
    return user


async def cmd_strikes(update: Update, context: HelpdeskContext) -> None:
    """/strikes @user: the strike ledger."""
    if not await _moderator_or_refuse(update, context):
        return
    user = await _user_arg(update, context, "Usage: /strikes @username (or a user id)")
    if user is None:
        return
    now = context.now()
    async with unit_of_work(context.desk.sessions) as session:
        ledger = await strikes.all_strikes(session, user_id=user.id)
    rows = [
        {"id": s.id, "at": casework.local_time(context, s.created_at), "reason": s.reason, "ad_id": s.ad_id,
         "pardoned": s.pardoned, "active": not s.pardoned and s.expires_at > now}
        for s in ledger
    ]
    await update.effective_message.reply_html(  # type: ignore[union-attr]
        casework.srender(context, "ads/strikes.html", name=user.display_name, user_id=user.id, status=user.status,
                         until=casework.local_time(context, user.blocked_until) if user.blocked_until else None, strikes=rows)
    )


async def cmd_warn(update: Update, context: HelpdeskContext) -> None:
    """/warn @user reason: a strike given by hand."""
    if not await _moderator_or_refuse(update, context):
        return
    user = await _user_arg(update, context, "Usage: /warn @username reason")
    if user is None:
        return
    reason = casework.clip(" ".join((context.args or [])[1:]).strip(), 500) or "warned by a moderator"
    async with unit_of_work(context.desk.sessions) as session:
        penalty = await strikes.warn(session, rules(context), user_id=user.id, reason=reason, moderator_id=update.effective_user.id, now=context.now())  # type: ignore[union-attr]
        queued = await penalty_notice(context, session, user.id, penalty, reason, None)
    context.desk.accounts.pop(user.id, None)
    await notices.send_all(context, [queued])
    await update.effective_message.reply_html(casework.srender(context, "ads/mod_result.html", icon="⚠️", text=f"{user.display_name}: strike #{penalty.strike_id}, {penalty.strikes} active, {penalty.action or 'no penalty'}"))  # type: ignore[union-attr]


async def cmd_unban(update: Update, context: HelpdeskContext) -> None:
    if not await _moderator_or_refuse(update, context):
        return
    user = await _user_arg(update, context, "Usage: /unban @username")
    if user is None:
        return
    async with unit_of_work(context.desk.sessions) as session:
        await strikes.unban(session, user_id=user.id, now=context.now(), moderator_id=update.effective_user.id)  # type: ignore[union-attr]
    context.desk.accounts.pop(user.id, None)
    await update.effective_message.reply_html(casework.srender(context, "ads/mod_result.html", icon="✅", text=f"{user.display_name} may use the bot and post again."))  # type: ignore[union-attr]


async def cmd_pardon(update: Update, context: HelpdeskContext) -> None:
    """/pardon <strike id>."""
    if not await _moderator_or_refuse(update, context):
        return
    args = list(context.args or [])
    if not args or not (args[0].lstrip("#").isascii() and args[0].lstrip("#").isdigit()) or len(args[0]) > 18:
        await update.effective_message.reply_html(casework.srender(context, "staff/error.html", message="Usage: /pardon <strike id>"))  # type: ignore[union-attr]
        return
    async with unit_of_work(context.desk.sessions) as session:
        done = await strikes.pardon(session, rules(context), strike_id=int(args[0].lstrip("#")), now=context.now())
    if done is None:
        await update.effective_message.reply_html(casework.srender(context, "staff/error.html", message=f"No active strike #{args[0]}."))  # type: ignore[union-attr]
        return
    strike, penalty = done
    context.desk.accounts.pop(strike.user_id, None)
    await update.effective_message.reply_html(casework.srender(context, "ads/mod_result.html", icon="🕊", text=f"strike #{strike.id} pardoned; {penalty.strikes} active, {penalty.action or 'no penalty'}"))  # type: ignore[union-attr]


# ------------------------------------------------------------------ /myads, renewals, expiry


async def myads(update: Update, context: HelpdeskContext) -> None:
    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        listed = await service.my_ads(session, user_id=user_id)
    items = [
        {"number": a.id, "title": a.title, "status": context.label(f"ad_status_{a.status}"),
         "expires": casework.local_time(context, a.expires_at) if a.status == AdStatus.APPROVED else None}
        for a in listed
    ]
    rows = []
    for a in listed:
        buttons = []
        if a.status in (AdStatus.APPROVED, AdStatus.EXPIRED, AdStatus.REJECTED, AdStatus.CHANGES):
            buttons.append(InlineKeyboardButton(f"{context.label('btn_edit_ad')} #{a.id}", callback_data=f"my:edit:{a.id}"))
        if a.status == AdStatus.APPROVED:
            buttons.append(InlineKeyboardButton(f"{context.label('btn_sold')} #{a.id}", callback_data=f"my:sold:{a.id}"))
        if a.status in (AdStatus.APPROVED, AdStatus.EXPIRED):
            buttons.append(InlineKeyboardButton(f"{context.label('btn_renew')} #{a.id}", callback_data=f"my:renew:{a.id}"))
        if a.status not in (AdStatus.TAKEN_DOWN,):
            buttons.append(InlineKeyboardButton(f"{context.label('btn_delete')} #{a.id}", callback_data=f"my:delete:{a.id}"))
        if buttons:
            rows.append(buttons)
    await update.effective_message.reply_html(  # type: ignore[union-attr]
        context.render("ads/myads.html", ads=items), reply_markup=InlineKeyboardMarkup(rows) if rows else None
    )


async def on_owner_button(update: Update, context: HelpdeskContext) -> None:
    """``my:(edit|sold|delete|renew):<ad>``."""
    query = update.callback_query
    _, action, number = query.data.split(":")  # type: ignore[union-attr]
    told = None
    try:
        async with unit_of_work(context.desk.sessions) as session:
            done = await service.owner_action(session, rules(context), ad_id=int(number), user_id=query.from_user.id, action=action, now=context.now())  # type: ignore[union-attr]
            if done is not None and action != "edit":  # the owner's word that it is done (a second press is stale): queued with it
                text = context.render("ads/owner_done.html", action=action, number=done.ad.id, expires=casework.local_time(context, done.ad.expires_at))
                kind = {"sold": "ad_sold", "delete": "ad_deleted", "renew": "ad_renewed"}.get(action, f"ad_{action}")
                told = await notices.queue(context, session, chat_id=done.ad.user_id, kind=kind, ref=f"ad:{done.ad.id}", text=text)
    except FieldError:
        await toast(query)  # type: ignore[arg-type]
        await newad(update, context)  # explains the block, with the Appeal button
        return
    if done is None:
        await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        return
    await toast(query, context.label("toast_done"))  # type: ignore[arg-type]
    await set_markup(query, None)  # type: ignore[arg-type]
    if done.unpublish is not None:
        await unpublish(context, done.ad.id)
    if action == "edit":
        await prompt(context, update.effective_chat.id, done.ad)  # type: ignore[union-attr]
        return
    await notices.send_all(context, [told])
    if action == "renew":  # posted unless it is in the channel already (the claim decides)
        await publish(context, done.ad.id)


async def expiry_job(context: HelpdeskContext) -> None:
    """JobQueue: remind owners before expiry, expire ads, once each (marked in the
    database, with the owner's notice queued in the same transaction)."""
    templates = context.desk.templates
    queued: list[notices.Queued] = []
    async with unit_of_work(context.desk.sessions) as session:
        items = await service.expiry_sweep(session, rules(context), now=context.now())
        for item in items:
            ad = item.ad
            locale = await casework.user_locale(context, ad.user_id)
            renew = InlineKeyboardMarkup([[InlineKeyboardButton(templates.label(locale, "btn_renew"), callback_data=f"my:renew:{ad.id}")]])
            remind = item.action == service.ExpiryAction.REMIND
            text = templates.render(
                "ads/expiry_reminder.html" if remind else "ads/expired.html", locale, number=ad.id, title=ad.title,
                expires=casework.local_time(context, ad.expires_at), days=context.desk.settings.ads.expiry_days,
            )
            queued.append(await notices.queue(
                context, session, chat_id=ad.user_id, kind="ad_expiry_reminder" if remind else "ad_expired", ref=f"ad:{ad.id}",
                text=text, markup=renew,
            ))
    for item, notice in zip(items, queued, strict=True):
        if item.unpublish is not None:
            await unpublish(context, item.ad.id)
        await notices.send_all(context, [notice])


async def cmd_modqueue(update: Update, context: HelpdeskContext) -> None:
    """/modqueue: pending ads with waiting times, oldest first."""
    if not await _moderator_or_refuse(update, context):
        return
    async with unit_of_work(context.desk.sessions) as session:
        pending = await service.pending_ads(session)
    now = context.now()
    items = [
        {"number": a.id, "title": a.title, "category": category_text(context, a),
         "waiting": casework.human_minutes((now - a.submitted_at).total_seconds() / 60) if a.submitted_at else "?",
         "flags": ", ".join(c.code for c in a.checks)}
        for a in pending
    ]
    await update.effective_message.reply_html(casework.srender(context, "ads/modqueue.html", ads=items))  # type: ignore[union-attr]


# ------------------------------------------------------------------ reports and disputes


async def start_report(update: Update, context: HelpdeskContext, ad_id: int) -> None:
    """From /report N, or the channel post's "Report this ad" link (/start report-N)."""
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    async with unit_of_work(context.desk.sessions) as session:
        ad = await service.get_ad(session, ad_id)
    if ad is None or ad.status != AdStatus.APPROVED:
        await context.bot.send_message(chat_id, context.render("ads/report_unknown.html"))
        return
    rows = [[InlineKeyboardButton(context.label(f"report_reason_{r}"), callback_data=f"rp:{ad_id}:{r}")] for r in service.REPORT_REASONS]
    await context.bot.send_message(chat_id, context.render("ads/report_ask.html", number=ad.id, title=ad.title), reply_markup=InlineKeyboardMarkup(rows))


async def cmd_report(update: Update, context: HelpdeskContext) -> None:
    args = list(context.args or [])
    number = args[0].lstrip("#") if args else ""
    if not (number.isascii() and number.isdigit()) or len(number) > 12:  # "²".isdigit() too
        await update.effective_message.reply_html(context.render("ads/report_unknown.html"))  # type: ignore[union-attr]
        return
    await start_report(update, context, int(number))


async def on_report_button(update: Update, context: HelpdeskContext) -> None:
    """``rp:<ad>:<reason>`` and ``rp:dispute:<ad>``."""
    from escalation import service as tickets
    from handlers.tickets import after_intake, queue_intake

    query = update.callback_query
    _, first, second = query.data.split(":")  # type: ignore[union-attr]
    user_id = query.from_user.id  # type: ignore[union-attr]
    if first == "dispute":
        async with unit_of_work(context.desk.sessions) as session:
            ad = await service.get_ad(session, int(second))
            if ad is None or not await service.reported_as_scam(session, ad_id=ad.id, reporter_id=user_id):
                await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
                return
            owner = await session.get(User, ad.user_id)
            subject = f"Dispute about ad #{ad.id} “{ad.title}” (seller {owner.display_name if owner else '?'}, id {ad.user_id})"
            intake = await tickets.open_request(
                session, context.desk.policy, user_id=user_id, category="dispute", question_id=None, now=context.now(), subject=subject
            )
            queued = await queue_intake(context, session, intake)
        await toast(query)  # type: ignore[arg-type]
        await set_markup(query, None)  # type: ignore[arg-type]
        await after_intake(update, context, intake, queued)
        return
    ad_id, reason = int(first), second
    async with unit_of_work(context.desk.sessions) as session:
        result = await service.report_ad(session, ad_id=ad_id, reporter_id=user_id, reason=reason, now=context.now())
    if result is None:
        await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        return
    report, new = result
    await toast(query, context.label("toast_done"))  # type: ignore[arg-type]
    markup = None
    if reason == "scam":
        markup = InlineKeyboardMarkup([[InlineKeyboardButton(context.label("btn_open_dispute"), callback_data=f"rp:dispute:{ad_id}")]])
    await query.edit_message_text(context.render("ads/report_thanks.html", number=ad_id, scam=reason == "scam"), reply_markup=markup)  # type: ignore[union-attr]
    if new:
        await post_report_card(context, report.id)


async def report_card(context: HelpdeskContext, report_id: int, state: str = "⏳ open", *, copy: bool = False) -> tuple[str, Any]:
    """A report card's text; with the "posted again" line when a post of it timed out,
    unless ``copy``: the text for the first copy of such a card."""
    from ads.models import AdReport

    async with unit_of_work(context.desk.sessions) as session:
        report = await session.get(AdReport, report_id)
        ad = await service.get_ad(session, report.ad_id)  # type: ignore[union-attr]
        reporter = await session.get(User, report.reporter_id)  # type: ignore[union-attr]
        owner = await session.get(User, ad.user_id)  # type: ignore[union-attr]
    text = casework.srender(
        context, "ads/report_card.html", report=report, ad=ad, state=state,
        reason=casework.slabel(context, f"report_reason_{report.reason}"),  # type: ignore[union-attr]
        reporter=_shown_name(context, reporter), owner=_shown_name(context, owner),
    )
    if not copy:
        text = casework.posted_again(context, text, report.card_timeouts)  # type: ignore[union-attr]
    return text, report


def _shown_name(context: HelpdeskContext, user: User | None) -> str:
    if user is None:
        return "?"
    return casework.erased_name(context, user) or user.display_name


def _report_buttons(context: HelpdeskContext, report_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(casework.slabel(context, "btn_uphold"), callback_data=f"rep:up:{report_id}"),
        InlineKeyboardButton(casework.slabel(context, "btn_dismiss"), callback_data=f"rep:no:{report_id}"),
    ]])


async def redraw_report_card(context: HelpdeskContext, report_id: int) -> None:
    """Draw a report's card again from the database (after an erasure: without the
    erased person's name, or their ad's text). Telegram's refusal is raised (not "not
    modified": the card shows it already): the caller (:mod:`handlers.redraws`) records it."""
    from ads.models import AdReport

    async with unit_of_work(context.desk.sessions) as session:
        report = await session.get(AdReport, report_id)
        if report is None or report.card_chat_id is None or report.card_message_id is None:
            return
        names = await escalation_service.staff_names(session, [report.decided_by] if report.decided_by else [])
    if report.status == "open":
        state, markup = "⏳ open", _report_buttons(context, report_id)
    else:
        by = names.get(report.decided_by or 0) or casework.slabel(context, "erased_staff")
        state, markup = decision_line(context, report.status, by, report.decided_at), None  # type: ignore[arg-type]
    text, _ = await report_card(context, report_id, state=state)
    try:
        await context.bot.edit_message_text(text, chat_id=report.card_chat_id, message_id=report.card_message_id, reply_markup=markup)
    except BadRequest as exc:
        if not not_modified(exc):
            raise


async def post_report_card(context: HelpdeskContext, report_id: int, *, moved: bool = False, again: bool = False) -> bool:
    """An open report's card for the moderators: claimed, refused, timed out (and posted
    ``again``) and moved exactly like :func:`post_for_moderation`. True when posted."""
    chat_id, topic = await moderation_place(context)
    text, report = await report_card(context, report_id)  # drawn before the claim: after it, only sends
    buttons = _report_buttons(context, report_id)
    async with unit_of_work(context.desk.sessions) as session:
        if again:
            claimed = await casework.claim_card_again(context, session, service.REPORT_CARDS, report_id)
        else:
            claimed = await service.claim_report_card(session, report_id=report_id, now=context.now())
        if not claimed:
            log.info("the card of report %s is posted by another sender (or was): not posted again", report_id)
            return False
    try:
        card = await delivery.readable(context.bot.send_message(chat_id, text, message_thread_id=topic, reply_markup=buttons))
    except ChatMigrated as exc:
        await _release_report_card(context, report_id)
        if moved:
            log.error("the staff chat moved twice in a row; report %s is left for the sweep", report_id)
            return False
        await delivery.chat_moved(context, chat_id, exc.new_chat_id)
        return await post_report_card(context, report_id, moved=True)
    except TimedOut as exc:  # or unreadable (delivery.Unreadable); it may have arrived: the sweep posts it again after the grace
        await casework.card_timed_out(context, service.REPORT_CARDS, report_id, f"report #{report_id}", exc)
        return False
    except TelegramError as exc:
        log.error("could not post report %s (the sweep tries again): %s", report_id, exc)
        await _release_report_card(context, report_id)
        return False
    async with unit_of_work(context.desk.sessions) as session:
        await service.attach_report_card(session, report_id=report_id, chat_id=chat_id, message_id=card.message_id)
    return True


async def _release_report_card(context: HelpdeskContext, report_id: int) -> None:
    async with unit_of_work(context.desk.sessions) as session:
        await service.release_report_card(session, report_id=report_id)


async def on_report_decision(update: Update, context: HelpdeskContext) -> None:
    """``rep:up:<report>`` / ``rep:no:<report>``: an upheld report takes the ad down and
    counts as a strike against its owner."""
    query = update.callback_query
    _, verdict, number = query.data.split(":")  # type: ignore[union-attr]
    moderator = query.from_user  # type: ignore[union-attr]
    if not await _moderator(context, moderator, update.effective_chat.id):  # type: ignore[union-attr]
        log.warning("refused a report decision by %s", moderator.id)
        await toast(query, casework.slabel(context, "toast_not_moderator"))  # type: ignore[arg-type]
        return
    uphold = verdict == "up"
    penalty = None
    async with unit_of_work(context.desk.sessions) as session:
        result = await service.decide_report(session, report_id=int(number), moderator_id=moderator.id, uphold=uphold, now=context.now())
        if result is not None and result.won and uphold and result.ad is not None:
            reason = casework.slabel(context, f"report_reason_{result.report.reason}")
            penalty = await strikes.add_strike(
                session, rules(context), user_id=result.ad.user_id, reason=f"upheld report: {reason}", ad_id=result.ad.id,
                moderator_id=moderator.id, now=context.now(),
            )
        queued: list[notices.Queued | None] = []
        if result is not None and result.won:  # queued with the verdict, sent after the commit
            ad = result.ad
            reporter = result.report.reporter_id
            # an erased person's anonymous id: the outbox queues nothing (nobody to tell)
            text = context.desk.templates.render(
                "ads/report_outcome.html", await casework.user_locale(context, reporter), upheld=uphold, number=ad.id if ad else "?"
            )
            queued.append(await notices.queue(context, session, chat_id=reporter, kind="report_outcome", ref=f"report:{number}", text=text))
            if uphold and ad is not None:
                locale = await casework.user_locale(context, ad.user_id)
                owner_reason = context.desk.templates.label(locale, f"report_reason_{result.report.reason}")
                text = context.desk.templates.render("ads/taken_down.html", locale, number=ad.id, title=ad.title, reason=owner_reason)
                queued.append(await notices.queue(context, session, chat_id=ad.user_id, kind="ad_taken_down", ref=f"ad:{ad.id}", text=text))
                if penalty is not None and penalty.action is not None:
                    queued.append(await penalty_notice(context, session, ad.user_id, penalty, f"upheld report: {owner_reason}", None))
    if result is None or not result.won:
        await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        if result is not None:
            await drop_stale_copy(query, result.report.card_chat_id, result.report.card_message_id)  # type: ignore[arg-type]
        return
    await toast(query, casework.slabel(context, "toast_done"))  # type: ignore[arg-type]
    line = decision_line(context, "upheld" if uphold else "dismissed", moderator.first_name, context.now())
    text, _ = await report_card(context, int(number), state=line)
    copy_text, _ = await report_card(context, int(number), state=line, copy=True)
    await show_decided(context, query, (result.report.card_chat_id, result.report.card_message_id), text, copy_text, f"report {number}")
    if result.unpublish is not None:
        await unpublish(context, result.ad.id)  # type: ignore[union-attr]
    if penalty is not None and penalty.action is not None and result.ad is not None:
        context.desk.accounts.pop(result.ad.user_id, None)
    await notices.send_all(context, queued)


async def on_take_down(update: Update, context: HelpdeskContext) -> None:
    """``m:down:<ad>``: take down a live ad (spot checks of auto-approved ads)."""
    query = update.callback_query
    ad_id = int(query.data.split(":")[2])  # type: ignore[union-attr]
    moderator = query.from_user  # type: ignore[union-attr]
    if not await _moderator(context, moderator, update.effective_chat.id):  # type: ignore[union-attr]
        await toast(query, casework.slabel(context, "toast_not_moderator"))  # type: ignore[arg-type]
        return
    async with unit_of_work(context.desk.sessions) as session:
        done = await service.take_down(session, ad_id=ad_id, moderator_id=moderator.id, now=context.now())
        if done is not None:
            locale = await casework.user_locale(context, done[0].user_id)
            text = context.desk.templates.render("ads/taken_down.html", locale, number=done[0].id, title=done[0].title, reason=None)
            queued = await notices.queue(context, session, chat_id=done[0].user_id, kind="ad_taken_down", ref=f"ad:{ad_id}", text=text)
    if done is None:
        await toast(query, context.label("toast_expired"))  # type: ignore[arg-type]
        async with unit_of_work(context.desk.sessions) as session:
            ad = await service.get_ad(session, ad_id)
        if ad is not None:
            await drop_stale_copy(query, ad.mod_chat_id, ad.mod_message_id)  # type: ignore[arg-type]
        return
    ad, published = done
    await toast(query, casework.slabel(context, "toast_done"))  # type: ignore[arg-type]
    if published is not None:
        await unpublish(context, ad.id)
    line = decision_line(context, AdEventKind.TAKEN_DOWN, moderator.first_name, context.now())
    text, _ = await mod_card(context, ad_id, decision=line)
    copy_text, _ = await mod_card(context, ad_id, decision=line, copy=True)
    await show_decided(context, query, (ad.mod_chat_id, ad.mod_message_id), text, copy_text, f"ad #{ad_id}")
    await notices.send_all(context, [queued])
