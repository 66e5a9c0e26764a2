"""Tickets, their audit trail, their messages, ratings, saved replies, staff members."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, SafeString, SafeText


class TicketStatus(StrEnum):
    DRAFT = "draft"  # the user is still describing the problem; staff do not see it
    NEW = "new"  # reached staff, nobody has claimed it
    CLAIMED = "claimed"  # has an assignee
    WAITING = "waiting"  # staff answered, waiting on the user (SLA clock paused)
    RESOLVED = "resolved"  # the user may still reopen it within support.reopen_days
    CLOSED = "closed"


OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.CLAIMED, TicketStatus.WAITING)
# The condition of the partial index behind /queue (migration 0015): OPEN_STATUSES as SQL.
OPEN_TICKETS = f"status IN ({', '.join(repr(s.value) for s in OPEN_STATUSES)})"
TICKETS_NEEDING_CARD = f"card_message_id IS NULL AND {OPEN_TICKETS}"
FEEDBACK_NEEDING_CARD = "staff_message_id IS NULL AND answer IS NULL"


class Direction(StrEnum):
    IN = "in"  # user -> staff
    OUT = "out"  # staff -> user
    NOTE = "note"  # internal note, never shown to the user
    BOT = "bot"  # what the bot told the user about the case


class SendState(StrEnum):
    """Where a relay (user -> staff, staff -> user) stands; ``delivered`` says how a
    finished one went."""

    PENDING = "pending"  # stored, not sent yet (or put back: surely not sent): the sweep sends it if its sender does not
    SENDING = "sending"  # claimed by a sender; if it stays so, the bot stopped mid-send (maybe delivered)
    SENT = "sent"  # the attempt is over; ``delivered`` holds its outcome


class Ticket(Base):
    """A support case. ``id`` is the number people see (#123)."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_escalated", "status", "escalated_at"),
        # /mytickets and the user's cases: their latest tickets without sorting them all
        Index("ix_tickets_user_id_id", "user_id", "id"),
        # /queue: the open tickets, oldest first, read in order (the table is mostly closed)
        Index(
            "ix_tickets_open_queue", "escalated_at", "id",
            postgresql_where=text(OPEN_TICKETS), sqlite_where=text(OPEN_TICKETS),
        ),
        # the minute's sweep (migration 0023): open tickets whose card is not known
        Index("ix_tickets_needing_card", "id", postgresql_where=text(TICKETS_NEEDING_CARD), sqlite_where=text(TICKETS_NEEDING_CARD)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(SafeString(20))
    department: Mapped[str] = mapped_column(SafeString(40))
    priority: Mapped[str] = mapped_column(SafeString(10))
    subject: Mapped[str] = mapped_column(SafeText, default="")
    status: Mapped[str] = mapped_column(SafeString(10), default=TicketStatus.DRAFT)
    assignee_id: Mapped[int | None] = mapped_column(index=True)
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"))
    # what the bot had offered before the user asked for a person: [{"entry_id", "score"}]
    offered: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    escalated_at: Mapped[datetime | None]  # reached a person: the SLA clock starts here
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(SafeString(16))  # resolved | spam | user | expired
    # where the case lives in the staff chat
    staff_chat_id: Mapped[int | None]
    topic_id: Mapped[int | None]
    card_message_id: Mapped[int | None]
    # when posting the staff card was started (claimed): the sweep posts a card for an
    # open ticket without one only while this is empty, so racing senders never post it
    # twice (after a timeout the sweep claims it again: card_timeouts)
    card_claimed_at: Mapped[datetime | None]
    # posts of the card that timed out with no card known: posted again by the sweep a bounded
    # number of times (bot.card_retries), then staff are told once
    card_timeouts: Mapped[int] = mapped_column(default=0, server_default="0")
    # SLA: due times shift while the clock is paused (waiting on the user)
    first_due_at: Mapped[datetime | None]
    # a staff reply is due by then (first response, and again after a release, reopen
    # or transfer); cleared by a staff reply. The sweep follows this column.
    reply_due_at: Mapped[datetime | None] = mapped_column(index=True)
    resolve_due_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]  # SLA clock paused (waiting on the user) since
    waiting_since: Mapped[datetime | None]  # the latest staff message while waiting on the user
    sla_level: Mapped[int] = mapped_column(default=0)  # 1: re-announced, 2: assignee pinged
    first_response_breached: Mapped[bool] = mapped_column(default=False)
    resolution_breached: Mapped[bool] = mapped_column(default=False)
    user_blocked_bot: Mapped[bool] = mapped_column(default=False)
    reopen_count: Mapped[int] = mapped_column(default=0)
    learned_entry_id: Mapped[str | None] = mapped_column(SafeString(40))

    @property
    def number(self) -> int:
        return self.id


class TicketEvent(Base):
    """Audit trail: one row per change of a ticket."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int | None]  # Telegram id of the user or staff member; None: the bot
    actor_kind: Mapped[str] = mapped_column(SafeString(8))  # user | staff | system
    from_status: Mapped[str | None] = mapped_column(SafeString(10))
    to_status: Mapped[str | None] = mapped_column(SafeString(10))
    note: Mapped[str] = mapped_column(SafeText, default="")
    at: Mapped[datetime]


class TicketMessage(Base):
    """Every message of a case, with where it is on both sides."""

    __tablename__ = "ticket_messages"
    __table_args__ = (
        Index("ix_ticket_messages_staff", "staff_chat_id", "staff_message_id"),
        Index("ix_ticket_messages_send_state", "send_state"),
        Index("ix_ticket_messages_person_id", "person_id"),  # erasure: the bot's messages that name a person (migration 0029)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(SafeString(4))
    sender_id: Mapped[int | None]
    kind: Mapped[str] = mapped_column(SafeString(16), default="text")  # text | photo | document | voice | ...
    text: Mapped[str] = mapped_column(SafeText, default="")
    file_id: Mapped[str | None] = mapped_column(SafeString(256))
    user_message_id: Mapped[int | None]
    staff_chat_id: Mapped[int | None]
    staff_message_id: Mapped[int | None]
    # a notice of the bot (``bot``) whose text names someone besides the user (the staff
    # member on the case: "Thandi from support is on your case"): redacted when that
    # person is erased (:mod:`bot.privacy`), like the notice itself (``notices.person_id``)
    person_id: Mapped[int | None]
    # True: delivered; False: not delivered (``error`` says why); None: maybe delivered
    # (the request timed out after it was sent, so it is not sent again blindly)
    delivered: Mapped[bool | None] = mapped_column(default=True)
    # a relay to the other side (see SendState): None for what is never relayed (notes,
    # the bot's own notices, the description shown on the card)
    send_state: Mapped[str | None] = mapped_column(SafeString(8))
    # when a sender claimed it (pending -> sending): a claim older than
    # ``telegram.stuck_send_minutes`` means the sender died mid-send (maybe delivered)
    claimed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(SafeText)
    at: Mapped[datetime]
    # a relay Telegram surely did not take (its flood limit, the Bot API out of reach),
    # queued again: the sweep sends it no sooner than this (Telegram's retry_after)
    retry_at: Mapped[datetime | None]


class TicketCardCopy(Base):
    """An earlier copy of a ticket's staff card: a card that was the tracked one before
    it was posted again (``/repost``), a first copy whose post timed out, known once a
    button on it was pressed, or the card a transfer left in the old department's chat.
    The tracked card is ``tickets.card_message_id``. A reply to a copy in the ticket's own
    chat reaches the case like a reply to the card; erasing the user redraws every copy.
    Message ids count per chat: the copies in a chat that became a supergroup are
    dropped with the move (the new chat numbers its messages afresh)."""

    __tablename__ = "ticket_card_copies"

    chat_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)


class Rating(Base):
    """The user's satisfaction rating of a resolved ticket (one per ticket)."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    survey_message_id: Mapped[int | None]
    sent_at: Mapped[datetime]
    stars: Mapped[int | None]
    rated_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(SafeText)
    comment_pending: Mapped[bool] = mapped_column(default=False)


class CannedReply(Base):
    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(SafeString(32), unique=True)
    text: Mapped[str] = mapped_column(SafeText)
    created_by: Mapped[int | None]
    created_at: Mapped[datetime]


class StaffMember(Base):
    """Staff as seen acting in the staff chat (for names and /assign @username)."""

    __tablename__ = "staff_members"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(SafeString(256), default="")
    username: Mapped[str | None] = mapped_column(SafeString(64), index=True)
    last_seen: Mapped[datetime]


class Feedback(Base):
    """Free-text feedback about the service (/feedback), with an optional 1-5 rating.

    Staff see it in the staff chat and may answer it once; the answer reaches the user.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        # the minute's sweep (migration 0023): unanswered feedback whose card is not known
        Index("ix_feedback_needing_card", "id", postgresql_where=text(FEEDBACK_NEEDING_CARD), sqlite_where=text(FEEDBACK_NEEDING_CARD)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(SafeText, default="")
    rating: Mapped[int | None]  # 1-5, or None when the user skipped it
    created_at: Mapped[datetime] = mapped_column(index=True)
    # where the feedback was shown in the staff chat (a reply there answers it)
    staff_chat_id: Mapped[int | None]
    staff_message_id: Mapped[int | None]
    # when posting the card was started (claimed): the repair sweep posts a missing card
    # only while this is empty, so racing senders never post it twice (after a timeout
    # the sweep claims it again: card_timeouts)
    card_claimed_at: Mapped[datetime | None]
    # posts of the card that timed out with no card known: posted again by the sweep a bounded
    # number of times (bot.card_retries), then staff are told once
    card_timeouts: Mapped[int] = mapped_column(default=0, server_default="0")
    answer: Mapped[str | None] = mapped_column(SafeText)
    answered_by: Mapped[int | None]
    answered_at: Mapped[datetime | None]
