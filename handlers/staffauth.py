"""Who may act as staff: checked on every press and every command, never cached.

Every check is made against the chat the action came from: staff act only from a
staff chat (``staff.chat_id`` or a department's chat), moderators only from the staff
chat where moderation cards are posted. Nobody, not even ``staff.admin_ids``, acts on
staff buttons from a private chat or another group (such a press can only come from
forged callback data).
"""

from __future__ import annotations

import logging

from telegram import User
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from bot.context import HelpdeskContext
from bot.db import unit_of_work
from escalation import service as tickets_service

log = logging.getLogger(__name__)

MEMBER = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}
ADMIN = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR}


def is_staff_chat(context: HelpdeskContext, chat_id: int) -> bool:
    return chat_id in context.desk.staff_chats


async def _status(context: HelpdeskContext, user_id: int, chat_id: int) -> str | None:
    """The user's membership status in the chat, now (None when Telegram cannot say)."""
    try:
        member = await context.bot.get_chat_member(chat_id, user_id)
    except TelegramError as exc:
        log.warning("could not check the membership of %s in %s: %s", user_id, chat_id, exc)
        return None
    return member.status


async def is_staff(context: HelpdeskContext, user_id: int, chat_id: int) -> bool:
    """Staff = ``staff.admin_ids``, or a member (or, with membership = 'admins', an
    administrator) of the staff chat the action came from."""
    if not is_staff_chat(context, chat_id):
        return False
    settings = context.desk.settings
    if user_id in settings.staff.admin_ids:
        return True
    allowed = MEMBER if settings.staff.membership == "chat" else ADMIN
    return await _status(context, user_id, chat_id) in allowed


async def is_admin(context: HelpdeskContext, user_id: int, chat_id: int) -> bool:
    """``staff.admin_ids``, or an administrator of the staff chat the action came from."""
    if not is_staff_chat(context, chat_id):
        return False
    if user_id in context.desk.settings.staff.admin_ids:
        return True
    return await _status(context, user_id, chat_id) in ADMIN


async def is_moderator(context: HelpdeskContext, user_id: int, chat_id: int) -> bool:
    """Moderators: ``ads.moderator_ids``, ``staff.admin_ids`` and the administrators of
    the staff chat, acting from the staff chat (where the moderation cards are)."""
    if chat_id != context.desk.settings.staff.chat_id or not is_staff_chat(context, chat_id):
        return False
    if user_id in context.desk.settings.ads.moderator_ids:
        return True
    return await is_admin(context, user_id, chat_id)


async def is_desk_admin(context: HelpdeskContext, user_id: int, chat_id: int) -> bool:
    """Admins acting from the (main) staff chat: personal-data requests (/userdata, /forget)."""
    return chat_id == context.desk.settings.staff.chat_id and await is_admin(context, user_id, chat_id)


async def remember_staff(context: HelpdeskContext, user: User) -> None:
    """Someone who just acted as staff or moderator: their name and username in the staff
    directory (the name on the cards they decide; an erasure finds them). Its own unit of
    work: bookkeeping, not the update's effect (which records the update)."""
    async with unit_of_work(context.desk.sessions, effect=False) as session:
        await tickets_service.touch_staff(session, user_id=user.id, first_name=user.first_name, username=user.username, now=context.now())
