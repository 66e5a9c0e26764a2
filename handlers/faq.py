"""Questions and answers: free text is a question for the knowledge base."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.users import in_progress
from escalation.service import open_ticket_number
from handlers import ads, feedback, guides, tickets
from handlers.common import help_command
from handlers.ui import answer_keyboard, set_markup, short, toast
from kb import service
from kb.models import Outcome
from kb.service import AskResult, EntryView, Status


async def on_text(update: Update, context: HelpdeskContext) -> None:
    """Any text in a private chat: a main-menu item, or a question."""
    message = update.effective_message
    text = (message.text or "").strip()  # type: ignore[union-attr]
    if text in menu_labels(context):
        await feedback.stop_waiting(update, context)  # a menu item: the user moved on
    if text == context.label("menu_ask"):
        async with unit_of_work(context.desk.sessions) as session:
            open_case = await open_ticket_number(session, user_id=update.effective_user.id)  # type: ignore[union-attr]
        if open_case is not None:
            await message.reply_html(context.render("ticket/open_case_menu.html", number=open_case))  # type: ignore[union-attr]
        else:
            await message.reply_html(context.render("ask_prompt.html"))  # type: ignore[union-attr]
        return
    if text == context.label("menu_help"):
        await help_command(update, context)
        return
    if text == context.label("menu_support"):
        await tickets.support_command(update, context)
        return
    if text == context.label("menu_post_ad"):
        await ads.newad(update, context)
        return
    if text == context.label("menu_my_ads"):
        await ads.myads(update, context)
        return
    if text == context.label("menu_feedback"):
        await feedback.feedback_command(update, context)
        return
    if text == context.label("menu_guides"):
        await guides.guide_command(update, context)
        return
    if text == context.label("menu_language"):
        await guides.language_command(update, context)
        return
    # the text the user was asked for comes first: a feedback (an in-memory index of who
    # is awaited makes this free for everyone else), then an ad draft's step or a case
    if await feedback.route_text(update, context):
        return
    desk = context.desk
    user_id = update.effective_user.id  # type: ignore[union-attr]
    kind = small_talk(context, text)
    limit = desk.settings.kb.max_question_length
    # The common case in one transaction: nothing in progress, so the text is a question.
    async with unit_of_work(desk.sessions) as session:
        busy = await in_progress(session, user_id=user_id)
        result = None if any(busy) or kind is not None or len(text) > limit else await _ask(session, context, user_id, text)
    if busy.draft and await ads.route_draft(update, context):
        return
    if busy.case and await tickets.route_private(update, context):
        return
    if kind is not None:
        name = update.effective_user.first_name if update.effective_user else ""
        await message.reply_html(context.render(f"smalltalk_{kind}.html", name=name))  # type: ignore[union-attr]
        return
    if len(text) > limit:
        await message.reply_html(context.render("too_long.html", length=len(text), limit=limit))  # type: ignore[union-attr]
        return
    if result is None:
        async with unit_of_work(desk.sessions) as session:
            result = await _ask(session, context, user_id, text)
    await send_result(message.chat_id, context, result)  # type: ignore[union-attr]


MENU_ITEMS = ("menu_ask", "menu_help", "menu_support", "menu_post_ad", "menu_my_ads", "menu_feedback", "menu_guides", "menu_language")


def menu_labels(context: HelpdeskContext) -> set[str]:
    return {context.label(key) for key in MENU_ITEMS}


async def _ask(session: AsyncSession, context: HelpdeskContext, user_id: int, text: str) -> AskResult:
    settings = context.desk.settings.kb
    return await service.ask(
        session,
        context.desk.kb,
        user_id=user_id,
        text=text,
        answer_threshold=settings.answer_threshold,
        suggest_threshold=settings.suggest_threshold,
        now=context.now(),
    )


def small_talk(context: HelpdeskContext, text: str) -> str | None:
    """'thanks' or 'hello' when the whole message is one of the locale's phrases."""
    words = " ".join(re.findall(r"\w+", text.casefold()))
    for kind in ("thanks", "hello"):
        if words and words in context.label(f"smalltalk_{kind}").split("|"):
            return kind
    return None


async def send_answer(chat_id: int, context: HelpdeskContext, entry: EntryView, question_id: int) -> None:
    await context.bot.send_message(
        chat_id,
        context.render("faq/answer.html", title=entry.title, answer_html=entry.answer_html, ask_vote=True),
        reply_markup=answer_keyboard(context, entry, question_id),
    )


async def send_result(chat_id: int, context: HelpdeskContext, result: AskResult) -> None:
    if result.outcome == Outcome.ANSWERED and result.answer is not None:
        await send_answer(chat_id, context, result.answer, result.question_id)
    elif result.outcome == Outcome.SUGGESTED:
        rows = [
            [InlineKeyboardButton(short(f"{i + 1}. {e.title}"), callback_data=f"c:{result.question_id}:{i}")]
            for i, e in enumerate(result.suggestions)
        ]
        rows.append([InlineKeyboardButton(context.label("btn_none"), callback_data=f"c:{result.question_id}:n")])
        await context.bot.send_message(
            chat_id,
            context.render("faq/suggest.html", titles=[e.title for e in result.suggestions]),
            reply_markup=InlineKeyboardMarkup(rows),
        )
    else:
        await context.bot.send_message(
            chat_id, context.render("faq/no_match.html"), reply_markup=tickets.talk_button(context, result.question_id)
        )


async def on_choose(update: Update, context: HelpdeskContext) -> None:
    """A "did you mean" button: ``c:<question id>:<index>`` or ``c:<question id>:n``."""
    query = update.callback_query
    _, qid, pick = query.data.split(":")  # type: ignore[union-attr]
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        result = await service.choose(
            session,
            desk.kb,
            user_id=query.from_user.id,  # type: ignore[union-attr]
            question_id=int(qid),
            index=None if pick == "n" else int(pick),
            now=context.now(),
        )
    if result.status == Status.ALREADY and result.answer is not None and result.question_id is not None:
        await toast(query, context.label("toast_already_chosen"))  # type: ignore[arg-type]
        await send_answer(update.effective_chat.id, context, result.answer, result.question_id)  # type: ignore[union-attr]
        return
    if result.status != Status.OK:
        await _refuse(query, context, result.status)  # type: ignore[arg-type]
        return
    await toast(query)  # type: ignore[arg-type]
    if result.answer is not None and result.question_id is not None:
        await send_answer(update.effective_chat.id, context, result.answer, result.question_id)  # type: ignore[union-attr]
    else:
        await context.bot.send_message(
            update.effective_chat.id,  # type: ignore[union-attr]
            context.render("faq/none_of_these.html"),
            reply_markup=tickets.talk_button(context, result.question_id),
        )
    await set_markup(query, None)  # type: ignore[arg-type]


async def on_vote(update: Update, context: HelpdeskContext) -> None:
    """``v:<question id>:1`` (helpful) or ``v:<question id>:0`` (not helpful)."""
    query = update.callback_query
    _, qid, flag = query.data.split(":")  # type: ignore[union-attr]
    helpful = flag == "1"
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        result = await service.vote(
            session,
            desk.kb,
            user_id=query.from_user.id,  # type: ignore[union-attr]
            question_id=int(qid),
            helpful=helpful,
            now=context.now(),
        )
    if result.status == Status.ALREADY:
        await toast(query, context.label("toast_already_voted"))  # type: ignore[arg-type]
    elif result.status != Status.OK:
        await _refuse(query, context, result.status)  # type: ignore[arg-type]
        return
    else:
        await toast(query, context.label("toast_thanks_helpful" if helpful else "toast_thanks_not_helpful"))  # type: ignore[arg-type]
    if result.status == Status.OK and not helpful:
        await context.bot.send_message(
            update.effective_chat.id,  # type: ignore[union-attr]
            context.render("faq/not_helpful.html"),
            reply_markup=tickets.talk_button(context, result.question_id),
        )
    entry = result.answer
    await set_markup(query, answer_keyboard(context, entry, None) if entry else None)  # type: ignore[arg-type]


async def on_followup(update: Update, context: HelpdeskContext) -> None:
    """``f:<entry id>``: a follow-up button under an answer."""
    query = update.callback_query
    entry_id = query.data.split(":", 1)[1]  # type: ignore[union-attr]
    desk = context.desk
    async with unit_of_work(desk.sessions) as session:
        result = await service.open_entry(
            session, desk.kb, user_id=query.from_user.id, entry_id=entry_id, now=context.now()  # type: ignore[union-attr]
        )
    if result is None or result.answer is None:
        await _refuse(query, context, Status.EXPIRED)  # type: ignore[arg-type]
        return
    await toast(query)  # type: ignore[arg-type]
    await send_answer(update.effective_chat.id, context, result.answer, result.question_id)  # type: ignore[union-attr]


async def _refuse(query, context: HelpdeskContext, status: Status) -> None:  # type: ignore[no-untyped-def]
    key = {
        Status.NOT_YOURS: "toast_not_yours",
        Status.ALREADY: "toast_already_chosen",
    }.get(status, "toast_expired")
    await toast(query, context.label(key))
