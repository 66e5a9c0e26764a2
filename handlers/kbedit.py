"""``/kb`` in the staff chat: search, show, add, edit, phrase, delete, review, export.

Thin: each handler checks that a staff member acts from a staff chat, parses the
update, calls :mod:`kb.editing` in one transaction, reloads the matcher at once after a
change (:func:`handlers.jobs.refresh_kb`) and renders ``kb/*.html``.

``/kb add`` and a field of ``/kb edit`` are conversations kept in ``kb_drafts`` (one per
staff member and chat, so they survive a restart): while one is open, that staff
member's next message in that chat and topic goes to it (:func:`route_draft`, called by
the staff chat's message handler for a message that is not for a ticket), for
:data:`kb.editing.DRAFT_IDLE` after its last step. ``/cancel`` or Cancel leaves.

They do not start in a ticket's forum topic (:func:`_refused_in_ticket_topic`): there,
what staff write goes to the customer, as in any help desk's conversation view, and a
draft that quietly took those messages could publish a reply meant for one customer as
everyone's answer. The one-shot commands (``/kb search``, ``show``, ``phrase``, the
one-line ``/kb edit id field text``) work there.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from markupsafe import Markup
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, MessageEntity, Update

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from bot.telegram_html import visible_length
from escalation import service as escalation_service
from handlers import staff
from handlers.casework import local_time, slabel, srender
from handlers.jobs import refresh_kb
from handlers.ui import short, toast
from kb import editing
from kb.editing import EditError
from kb.kbfile import MAX_TITLE, dump_kb
from kb.richtext import markdown_to_telegram_html
from kb.service import export_kb

log = logging.getLogger(__name__)

SHOW_LIMIT = 4000  # visible characters of the /kb show card
CATEGORY_BUTTONS = 16


def _error(context: HelpdeskContext, exc: EditError) -> str:
    return srender(context, "kb/error.html", code=exc.code, **exc.details)


def _usage_error(context: HelpdeskContext, code: str) -> str:
    return srender(context, "kb/error.html", code=code)


def _cancel_row(context: HelpdeskContext) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(slabel(context, "btn_kb_cancel"), callback_data="kbd:cancel")]


def _rest_after(text: str, words: int) -> str:
    """``text`` after its first ``words`` words, newlines kept (answers, lists)."""
    for _ in range(words):
        text = text.lstrip()
        cut = len(text.split(maxsplit=1)[0]) if text.split() else 0
        text = text[cut:]
    return text.strip()


def markdown_of(message: Message) -> str:
    """The text a staff member typed, as knowledge-base Markdown: Telegram's own
    formatting (bold, italic, code, links; entities, not characters) is written back
    as ``**bold**``, ``_italic_``, ``[text](url)``...; Markdown typed as characters
    stays as it is."""
    text = message.text or message.caption or ""
    marks = {MessageEntity.BOLD: "**", MessageEntity.ITALIC: "_", MessageEntity.CODE: "`"}
    entities = sorted(
        (e for e in (message.entities or message.caption_entities or ())
         if e.type in marks or e.type in (MessageEntity.PRE, MessageEntity.TEXT_LINK)),
        key=lambda e: (e.offset, -e.length),
    )
    if not entities:
        return text
    units = text.encode("utf-16-le")
    out: list[str] = []
    pos = 0
    for e in entities:
        start, end = e.offset * 2, (e.offset + e.length) * 2
        if start < pos:
            continue  # nested in the previous one: the outer formatting wins
        out.append(units[pos:start].decode("utf-16-le"))
        inner = units[start:end].decode("utf-16-le")
        core = inner.strip()
        lead, trail = inner[: len(inner) - len(inner.lstrip())], inner[len(inner.rstrip()):]
        if not core:
            out.append(inner)
        elif e.type == MessageEntity.PRE:
            out.append(f"{lead}```\n{core}\n```{trail}")
        elif e.type == MessageEntity.TEXT_LINK:
            out.append(f"{lead}[{core}]({e.url}){trail}")
        else:
            out.append(f"{lead}{marks[e.type]}{core}{marks[e.type]}{trail}")
        pos = end
    out.append(units[pos:].decode("utf-16-le"))
    return "".join(out)


async def _reload(context: HelpdeskContext) -> None:
    """The change is committed: the matcher uses it for the very next question."""
    await refresh_kb(context)


# ------------------------------------------------------------------ /kb


async def cmd_kb(update: Update, context: HelpdeskContext) -> None:
    """``/kb <search|show|add|edit|phrase|delete|review|export> ...`` (staff chats only)."""
    if not await staff.staff_or_refuse(update, context):
        return
    message: Message = update.effective_message  # type: ignore[assignment]
    args = list(context.args or [])
    sub = args[0].lower() if args else ""
    handler = SUBCOMMANDS.get(sub)
    if handler is None:
        await message.reply_html(srender(context, "kb/usage.html"))
        return
    await handler(update, context, message, args[1:])


async def _search(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    words = " ".join(args)
    if not words:
        await message.reply_html(_usage_error(context, "usage_search"))
        return
    async with unit_of_work(context.desk.sessions) as session:
        hits = await editing.search(session, context.desk.kb, words, min_score=context.desk.settings.kb.suggest_threshold)
    await message.reply_html(srender(context, "kb/search.html", words=short(words, 80), hits=hits))


async def _show(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    if not args:
        await message.reply_html(_usage_error(context, "usage_show"))
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            entry = await editing.get_entry(session, args[0])
            actor = None
            if entry.last_change and entry.last_change.actor_id and entry.last_change.actor_id < 0:
                actor = slabel(context, "erased_staff")  # the anonymous id of an erased staff member
            elif entry.last_change and entry.last_change.actor_id:
                actor = (await escalation_service.staff_names(session, [entry.last_change.actor_id])).get(entry.last_change.actor_id)
    except EditError as exc:
        await message.reply_html(_error(context, exc))
        return
    changed_at = local_time(context, entry.last_change.at) if entry.last_change else ""
    phrasings = list(entry.phrasings)
    while True:
        card = srender(
            context, "kb/show.html", entry=entry, phrasings=phrasings, hidden=len(entry.phrasings) - len(phrasings),
            actor=actor or (str(entry.last_change.actor_id) if entry.last_change and entry.last_change.actor_id else None),
            changed_at=changed_at,
        )
        if visible_length(card) <= SHOW_LIMIT or not phrasings:
            break
        phrasings = phrasings[: len(phrasings) * 3 // 4]
    await message.reply_html(card)
    await message.reply_html(srender(context, "faq/answer.html", title=entry.title, answer_html=entry.answer_html, ask_vote=False))


async def _ticket_of_topic(context: HelpdeskContext, message: Message) -> int | None:
    """The ticket whose forum topic ``message`` is in (None: not a ticket's topic)."""
    if not message.is_topic_message or message.message_thread_id is None:
        return None
    async with unit_of_work(context.desk.sessions, read_only=True) as session:
        ticket = await escalation_service.ticket_at(session, chat_id=message.chat_id, thread_id=message.message_thread_id, reply_to=None)
    return ticket.id if ticket is not None else None


async def _refused_in_ticket_topic(context: HelpdeskContext, message: Message) -> bool:
    """A draft (``/kb add``, a field of ``/kb edit``) would start in a ticket's topic,
    where staff messages go to the customer: say where to start it instead (True)."""
    number = await _ticket_of_topic(context, message)
    if number is None:
        return False
    await message.reply_html(srender(context, "kb/error.html", code="ticket_topic", number=number))
    return True


async def _add(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    if await _refused_in_ticket_topic(context, message):
        return
    async with unit_of_work(context.desk.sessions) as session:
        draft = await editing.start_draft(
            session, staff_id=update.effective_user.id, chat_id=message.chat_id, kind="add", step="title", now=context.now(),  # type: ignore[union-attr]
            thread_id=message.message_thread_id if message.is_topic_message else None,
        )
        text, markup = await _step_prompt(context, session, draft.step, draft.data)
    await message.reply_html(text, reply_markup=markup)


async def _step_prompt(context: HelpdeskContext, session: Any, step: str, data: dict[str, Any]) -> tuple[str, InlineKeyboardMarkup]:
    """The prompt of an add draft's step (the preview at the end)."""
    if step == "preview":
        answer_html = Markup(markdown_to_telegram_html(data["answer"]))  # noqa: S704 (the renderer escapes)
        markup = InlineKeyboardMarkup([[
            InlineKeyboardButton(slabel(context, "btn_kb_save"), callback_data="kbd:save"), *_cancel_row(context),
        ]])
        return srender(context, "kb/preview.html", data=data, answer_html=answer_html), markup
    rows: list[list[InlineKeyboardButton]] = []
    if step == "category":
        names = [c for c in await editing.categories(session) if editing.CATEGORY_RE.match(c)][:CATEGORY_BUTTONS]
        buttons = [InlineKeyboardButton(name, callback_data=f"kbd:cat:{name}") for name in names]
        rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    rows.append(_cancel_row(context))
    return srender(context, "kb/step.html", step=step, data=data, max_title=MAX_TITLE), InlineKeyboardMarkup(rows)


async def _edit(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    """``/kb edit id`` (buttons: which field) or ``/kb edit id field new text``."""
    if not args:
        await message.reply_html(_usage_error(context, "usage_edit"))
        return
    user_id = update.effective_user.id  # type: ignore[union-attr]
    if len(args) >= 2:
        field = args[1].lower()
        # an answer keeps Telegram's own formatting (as Markdown); the rest is plain text
        value = _rest_after(markdown_of(message) if field == "answer" else message.text or "", 4)
        if field not in editing.FIELDS or not value:
            await message.reply_html(_usage_error(context, "usage_edit"))
            return
        values: dict[str, Any] = {field: value.splitlines() if field == "phrasings" else value}
        await _apply_edit(context, message, args[0], user_id, values)
        return
    if await _refused_in_ticket_topic(context, message):  # the field buttons start a draft
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            entry = await editing.get_entry(session, args[0])
    except EditError as exc:
        await message.reply_html(_error(context, exc))
        return
    markup = InlineKeyboardMarkup([
        [InlineKeyboardButton(slabel(context, f"btn_kb_{f}"), callback_data=f"kbe:{f}:{entry.id}") for f in editing.FIELDS],
        _cancel_row(context),
    ])
    await message.reply_html(srender(context, "kb/edit_menu.html", title=entry.title, entry_id=entry.id), reply_markup=markup)


async def _apply_edit(context: HelpdeskContext, message: Message, entry_id: str, user_id: int, values: dict[str, Any]) -> None:
    try:
        async with unit_of_work(context.desk.sessions) as session:
            entry = await editing.update_entry(session, entry_id, actor_id=user_id, now=context.now(), **values)
            change = (await editing.changes(session, entry_id=entry.id, limit=1))[0]
    except EditError as exc:
        await message.reply_html(_error(context, exc))
        return
    await _reload(context)
    await message.reply_html(srender(context, "kb/edited.html", entry_id=entry.id, before=change.before, after=change.after))


async def _phrase(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    text = _rest_after(message.text or "", 3)
    if len(args) < 2 or not text:
        await message.reply_html(_usage_error(context, "usage_phrase"))
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            entry = await editing.add_phrasing(session, args[0], text, actor_id=update.effective_user.id, now=context.now())  # type: ignore[union-attr]
    except EditError as exc:
        await message.reply_html(_error(context, exc))
        return
    await _reload(context)
    await message.reply_html(srender(context, "kb/phrase_added.html", text=editing.clean_line(text), entry_id=entry.id, title=entry.title))


async def _delete(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    if not args:
        await message.reply_html(_usage_error(context, "usage_delete"))
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            entry = await editing.get_entry(session, args[0])
    except EditError as exc:
        await message.reply_html(_error(context, exc))
        return
    markup = InlineKeyboardMarkup([[
        InlineKeyboardButton(slabel(context, "btn_kb_delete"), callback_data=f"kbx:yes:{entry.id}"),
        InlineKeyboardButton(slabel(context, "btn_kb_keep"), callback_data=f"kbx:no:{entry.id}"),
    ]])
    await message.reply_html(srender(context, "kb/delete_confirm.html", title=entry.title, entry_id=entry.id), reply_markup=markup)


async def _review(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    text, markup = await staff.review_card(context)
    await message.reply_html(text, reply_markup=markup)


async def _export(update: Update, context: HelpdeskContext, message: Message, args: list[str]) -> None:
    async with unit_of_work(context.desk.sessions) as session:
        doc = await export_kb(session)
    data = dump_kb(doc).encode("utf-8")
    now: datetime = context.now()
    caption = srender(
        context, "kb/export_caption.html", entries=len(doc.entries),
        phrasings=sum(len(e.phrasings) for e in doc.entries), at=local_time(context, now),
    )
    await message.reply_document(InputFile(data, filename=f"faq-{now:%Y%m%d-%H%M}.yaml"), caption=caption)


SUBCOMMANDS = {
    "search": _search,
    "find": _search,
    "show": _show,
    "add": _add,
    "new": _add,
    "edit": _edit,
    "phrase": _phrase,
    "delete": _delete,
    "review": _review,
    "export": _export,
}


# ------------------------------------------------------------------ drafts


async def route_draft(update: Update, context: HelpdeskContext) -> bool:
    """A message in a staff chat from someone with an open draft there: it is the
    answer to the draft's step (True), not a ticket reply. False: no draft."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return False
    async with unit_of_work(context.desk.sessions, effect=False) as session:
        draft = await editing.get_draft(session, staff_id=user.id, chat_id=message.chat_id)
        if draft is not None and editing.draft_expired(draft, now=context.now()):
            await session.delete(draft)  # forgotten: the message is ordinary conversation
            draft = None
    if draft is None:
        return False
    if editing.draft_thread(draft) != (message.message_thread_id if message.is_topic_message else None):
        return False  # another topic of the chat: the draft takes messages only where it was started
    if not await staff.staff_or_refuse(update, context):  # left the staff since starting it
        async with unit_of_work(context.desk.sessions) as session:
            await editing.drop_draft(session, staff_id=user.id, chat_id=message.chat_id)
        return True
    if not message.text:
        await message.reply_html(srender(context, "kb/not_text.html"))
        return True
    text = markdown_of(message) if draft.step == "answer" else message.text
    try:
        async with unit_of_work(context.desk.sessions) as session:
            draft = await editing.get_draft(session, staff_id=user.id, chat_id=message.chat_id)
            if draft is None:
                return True
            kind, entry_id = draft.kind, draft.entry_id
            outcome = await editing.draft_input(session, draft, text, actor_id=user.id, now=context.now())
            if outcome.draft is not None:
                prompt, markup = await _step_prompt(context, session, outcome.draft.step, outcome.draft.data)
            else:
                change = (await editing.changes(session, entry_id=entry_id, limit=1))[0]
    except EditError as exc:
        markup = InlineKeyboardMarkup([_cancel_row(context)])
        if exc.code == "unknown_entry":  # the entry being edited was deleted meanwhile: nothing left to do
            async with unit_of_work(context.desk.sessions) as session:
                await editing.drop_draft(session, staff_id=user.id, chat_id=message.chat_id)
            markup = None  # type: ignore[assignment]
        await message.reply_html(_error(context, exc), reply_markup=markup)
        return True
    if outcome.draft is None:  # an edit: done
        await _reload(context)
        await message.reply_html(srender(context, "kb/edited.html", entry_id=entry_id, before=change.before, after=change.after))
        return True
    assert kind == "add"
    await message.reply_html(prompt, reply_markup=markup)
    return True


async def cmd_cancel(update: Update, context: HelpdeskContext) -> None:
    """``/cancel`` in a staff chat: leave the open /kb add or /kb edit, and a
    moderator's pending "Other…" reason."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or not await staff.staff_or_refuse(update, context):
        return
    from handlers.ads import forget_typed_reason

    async with unit_of_work(context.desk.sessions) as session:
        gone = await editing.drop_draft(session, staff_id=user.id, chat_id=message.chat_id)
    gone = await forget_typed_reason(context, chat_id=message.chat_id, user_id=user.id) or gone
    await message.reply_html(srender(context, "kb/cancelled.html" if gone else "kb/nothing_to_cancel.html"))


async def on_draft_button(update: Update, context: HelpdeskContext) -> None:
    """``kbd:save`` / ``kbd:cancel`` / ``kbd:cat:<category>``: the presser's own draft."""
    query = update.callback_query
    if not await staff.staff_or_refuse(update, context):
        return
    data = query.data.split(":", 2)  # type: ignore[union-attr]
    user_id, chat_id = query.from_user.id, query.message.chat.id  # type: ignore[union-attr]
    action = data[1]
    if action == "cancel":
        async with unit_of_work(context.desk.sessions) as session:
            gone = await editing.drop_draft(session, staff_id=user_id, chat_id=chat_id)
        await toast(query, None if gone else slabel(context, "toast_kb_no_draft"))  # type: ignore[arg-type]
        if gone:
            await query.edit_message_reply_markup(reply_markup=None)  # type: ignore[union-attr]
            await query.message.reply_html(srender(context, "kb/cancelled.html"))  # type: ignore[union-attr]
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            if action == "save":
                entry = await editing.save_draft(session, staff_id=user_id, chat_id=chat_id, now=context.now())
                saved = (entry.id, entry.title)
            else:  # a category button
                draft = await editing.get_draft(session, staff_id=user_id, chat_id=chat_id)
                if draft is None or draft.kind != "add" or draft.step != "category":
                    raise EditError("no_draft")
                draft = (await editing.draft_input(session, draft, data[2], actor_id=user_id, now=context.now())).draft
                prompt, markup = await _step_prompt(context, session, draft.step, draft.data)  # type: ignore[union-attr]
    except EditError as exc:
        if exc.code == "no_draft":
            await toast(query, slabel(context, "toast_kb_no_draft"))  # type: ignore[arg-type]
            return
        await toast(query)  # type: ignore[arg-type]
        await query.message.reply_html(_error(context, exc), reply_markup=InlineKeyboardMarkup([_cancel_row(context)]))  # type: ignore[union-attr]
        return
    await toast(query)  # type: ignore[arg-type]
    await query.edit_message_reply_markup(reply_markup=None)  # type: ignore[union-attr]
    if action == "save":
        await _reload(context)
        await query.message.reply_html(srender(context, "kb/saved.html", entry_id=saved[0], title=saved[1]))  # type: ignore[union-attr]
    else:
        await query.message.reply_html(prompt, reply_markup=markup)  # type: ignore[union-attr]


async def on_edit_button(update: Update, context: HelpdeskContext) -> None:
    """``kbe:<field>:<entry>``: ask for the new value; the next message sets it."""
    query = update.callback_query
    if not await staff.staff_or_refuse(update, context):
        return
    _, field, entry_id = query.data.split(":", 2)  # type: ignore[union-attr]
    if isinstance(query.message, Message) and await _ticket_of_topic(context, query.message) is not None:
        await toast(query)  # type: ignore[arg-type]
        await _refused_in_ticket_topic(context, query.message)  # an old menu: no draft here
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            entry = await editing.get_entry(session, entry_id)
            await editing.start_draft(
                session, staff_id=query.from_user.id, chat_id=query.message.chat.id,  # type: ignore[union-attr]
                kind="edit", step=field, entry_id=entry.id, now=context.now(),
                thread_id=query.message.message_thread_id if query.message.is_topic_message else None,  # type: ignore[union-attr]
            )
    except EditError as exc:
        await toast(query)  # type: ignore[arg-type]
        await query.message.reply_html(_error(context, exc))  # type: ignore[union-attr]
        return
    current: str = {
        "title": entry.title,
        "answer": entry.answer,
        "category": entry.category,
        "phrasings": "\n".join(p.text for p in entry.phrasings if p.status == "active"),
    }[field]
    await toast(query)  # type: ignore[arg-type]
    await query.message.reply_html(  # type: ignore[union-attr]
        srender(context, "kb/edit_prompt.html", title=entry.title, entry_id=entry.id, field=field, current=short(current, 3000)),
        reply_markup=InlineKeyboardMarkup([_cancel_row(context)]),
    )


async def on_delete_button(update: Update, context: HelpdeskContext) -> None:
    """``kbx:yes:<entry>`` deletes, ``kbx:no:<entry>`` keeps."""
    query = update.callback_query
    if not await staff.staff_or_refuse(update, context):
        return
    _, verdict, entry_id = query.data.split(":", 2)  # type: ignore[union-attr]
    if verdict == "no":
        await toast(query)  # type: ignore[arg-type]
        await query.edit_message_text(srender(context, "kb/kept.html", entry_id=entry_id))  # type: ignore[union-attr]
        return
    try:
        async with unit_of_work(context.desk.sessions) as session:
            deleted = await editing.delete_entry(session, entry_id, actor_id=query.from_user.id, now=context.now())  # type: ignore[union-attr]
    except EditError as exc:
        await toast(query)  # type: ignore[arg-type]
        await query.edit_message_text(_error(context, exc))  # type: ignore[union-attr]
        return
    await _reload(context)
    await toast(query, slabel(context, "toast_done"))  # type: ignore[arg-type]
    await query.edit_message_text(  # type: ignore[union-attr]
        srender(context, "kb/deleted.html", entry_id=deleted.entry_id, title=deleted.title,
                name=query.from_user.first_name, unlinked=deleted.unlinked),  # type: ignore[union-attr]
    )
