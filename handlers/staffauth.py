"""Who may act as staff: checked on every press and every command, never cached."""

from __future__ import annotations

import logging

from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from bot.context import HelpdeskContext

log = logging.getLogger(__name__)

MEMBER = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}
ADMIN = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR}


async def is_staff(context: HelpdeskContext, user_id: int, chat_id: int) -> bool:
    """Staff = ``staff.admin_ids``, or a member (or, with membership = 'admins', an
    administrator) of the staff chat the action came from."""
    settings = context.desk.settings
    if user_id in settings.staff.admin_ids:
        return True
    if chat_id not in context.desk.staff_chats:
        return False
    try:
        member = await context.bot.get_chat_member(chat_id, user_id)
    except TelegramError as exc:
        log.warning("could not check staff membership of %s in %s: %s", user_id, chat_id, exc)
        return False
    allowed = MEMBER if settings.staff.membership == "chat" else ADMIN
    return member.status in allowed


async def is_admin(context: HelpdeskContext, user_id: int, chat_id: int) -> bool:
    if user_id in context.desk.settings.staff.admin_ids:
        return True
    try:
        member = await context.bot.get_chat_member(chat_id, user_id)
    except TelegramError:
        return False
    return member.status in ADMIN


async def is_moderator(context: HelpdeskContext, user_id: int, chat_id: int) -> bool:
    """Moderators: ``ads.moderator_ids``, or administrators of the staff chat the action
    came from (and ``staff.admin_ids``)."""
    if user_id in context.desk.settings.ads.moderator_ids:
        return True
    if chat_id not in context.desk.staff_chats and user_id not in context.desk.settings.staff.admin_ids:
        return False
    return await is_admin(context, user_id, chat_id)
