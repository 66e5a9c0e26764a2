"""Crash at any point: the real ``helpdesk run`` process, killed and started again.

The process long-polls the fake Bot API over HTTP (bot/fake_bot_server.py), which
re-delivers every update the bot has not confirmed, as Telegram does. The test drives a
support case, an ad draft and an SLA deadline, kills the bot with SIGKILL at chosen
points (updates fetched but not yet handled; a message sent to Telegram whose answer
never came back), starts it again on the same SQLite database, and checks that nothing
was lost and nothing was done twice. Finally SIGTERM: the message being handled is
finished, and the process exits with 0; the next start drops its repeat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.fake_bot_server import FakeBotServer
from bot.fake_telegram import FakeTelegram
from tests.test_run_process import ROOT, TOKEN, wait_for, write_config

pytestmark = pytest.mark.slow

STAFF = -1009999  # the staff chat of write_config
WAIT = 120.0  # generous: a loaded two-core machine starts Python slowly
SWEEP = 5  # seconds between SLA sweeps


class BotProcess:
    """One run of ``helpdesk run``; its output goes to a file (a full pipe would block it)."""

    def __init__(self, cfg: Path, server: FakeBotServer, log: Path):
        self.server = server
        self.log = log
        polls = len(server.polls)
        env = {**os.environ, "HELPDESK_BOT_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        env.pop("HELPDESK_CONFIG", None)
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        assert wait_for(lambda: len(server.polls) > polls or self.proc.poll() is not None, WAIT), self.output()
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean-up of any kind
        self.proc.wait(30)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def bot_texts(tg: FakeTelegram, chat_id: int, needle: str = "") -> list[str]:
    with tg.lock:
        return [m.text for m in tg.chat_messages(chat_id) if m.from_bot and needle in m.text]


def has_button(tg: FakeTelegram, chat_id: int, label: str) -> bool:
    with tg.lock:
        return any(label in b for m in tg.chat_messages(chat_id) if m.from_bot for b in m.button_texts)


def run(coro) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(coro)


def db_rows(path: Path, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(path, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def last_update_id(tg: FakeTelegram) -> int:
    with tg.lock:
        return tg.pending[-1]["update_id"]


def card_of(tg: FakeTelegram, number: int):  # type: ignore[no-untyped-def]
    with tg.lock:
        return next(m for m in tg.chat_messages(STAFF) if m.from_bot and m.text.startswith(f"🎫 #{number} "))


def test_sigkill_at_any_point_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    tg = FakeTelegram()
    tg.add_group(STAFF, "Support staff")
    thandi, bongani, sipho = tg.user(3101, "Thandi"), tg.user(3102, "Bongani"), tg.user(3103, "Sipho")
    agent = tg.staff(3201, "Lindiwe", STAFF)
    db = tmp_path / "run.db"
    with FakeBotServer(tg, TOKEN) as server:
        cfg = write_config(tmp_path, server)
        cfg.write_text(cfg.read_text() + f"[sla]\nsweep_seconds = {SWEEP}\n")
        bot = BotProcess(cfg, server, tmp_path / "run1.log")
        try:
            # --- a support case (Thandi), a second one nobody claims (Bongani), an ad draft (Sipho)
            for user, category, text in (
                (thandi, "Payments", "I paid for a featured ad twice"),
                (bongani, "Something else", "How do I change my e-mail address?"),
            ):
                run(user.send("/support"))
                assert wait_for(lambda u=user: bot_texts(tg, u.id, "What is it about"), WAIT), bot.output()
                run(user.press(category))
                assert wait_for(lambda u=user: bot_texts(tg, u.id, "Please describe the problem"), WAIT), bot.output()
                run(user.send(text))
                assert wait_for(lambda t=text: bot_texts(tg, STAFF, t), WAIT), bot.output()
            (thandi_case,), (bongani_case,) = db_rows(db, "SELECT id FROM tickets ORDER BY id")
            card = card_of(tg, thandi_case)
            run(sipho.send("/newad"))
            assert wait_for(lambda: bot_texts(tg, sipho.id, "step 1 of 7"), WAIT), bot.output()
            run(sipho.press("Electronics"))
            assert wait_for(lambda: has_button(tg, sipho.id, "Phones"), WAIT), bot.output()
            run(sipho.press("Phones"))
            assert wait_for(lambda: bot_texts(tg, sipho.id, "Step 2 of 7"), WAIT), bot.output()
            run(sipho.send("Samsung Galaxy A54 128 GB"))
            assert wait_for(lambda: bot_texts(tg, sipho.id, "Step 3 of 7"), WAIT), bot.output()

            # --- kill 1: three updates fetched in one getUpdates, the first one half-way
            # through its handler (checking that Lindiwe is staff), none of them done yet
            member_check = server.hold("getChatMember", lambda p: str(p.get("user_id")) == str(agent.id))
            description = "Used for a year, no scratches, with the original box and charger."
            with tg.lock:  # queued together: one getUpdates hands out all three
                run(agent.send("We are checking your payment now.", chat_id=STAFF, reply_to=card))
                run(thandi.send("My reference is PAY-778"))
                run(sipho.send(description))
                batch = [u["update_id"] for u in tg.pending[-3:]]
            assert member_check.wait(WAIT), bot.output()
            bot.kill()
            member_check.release(drop=True)
            assert not bot_texts(tg, thandi.id, "checking your payment")
            assert not bot_texts(tg, STAFF, "PAY-778")
            assert not server.confirmed(batch[0])

            bot = BotProcess(cfg, server, tmp_path / "run2.log")
            # all three are delivered again, and each is handled exactly once
            assert wait_for(lambda: all(server.confirmed(u) for u in batch), WAIT), bot.output()
            assert all(server.delivered(u) >= 2 for u in batch)
            assert len(bot_texts(tg, thandi.id, "We are checking your payment now.")) == 1
            assert len(bot_texts(tg, STAFF, "PAY-778")) == 1
            assert len(bot_texts(tg, sipho.id, "Step 4 of 7")) == 1
            assert db_rows(db, "SELECT step, description FROM ads WHERE user_id = ?", sipho.id) == [("price", description)]
            assert db_rows(db, "SELECT count(*) FROM ticket_messages WHERE text = 'My reference is PAY-778'") == [(1,)]

            # --- kill 2: Telegram delivered the relay to staff, the bot never heard back
            relay = server.hold("sendMessage", lambda p: str(p.get("chat_id")) == str(STAFF) and "PAY-779" in str(p.get("text")), after=True)
            run(thandi.send("Screenshot: PAY-779 was charged on the 3rd"))
            screenshot = last_update_id(tg)
            assert relay.wait(WAIT), bot.output()
            bot.kill()
            relay.release(drop=True)
            assert len(bot_texts(tg, STAFF, "PAY-779")) == 1 and not server.confirmed(screenshot)

            # --- while the bot is down, Bongani's reply target passes
            due = (datetime.now(UTC) - timedelta(minutes=5)).replace(tzinfo=None).isoformat(sep=" ")
            with sqlite3.connect(db, timeout=30) as conn:
                conn.execute("UPDATE tickets SET reply_due_at = ? WHERE id = ?", (due, bongani_case))

            bot = BotProcess(cfg, server, tmp_path / "run3.log")
            assert wait_for(lambda: server.confirmed(screenshot), WAIT), bot.output()
            assert server.delivered(screenshot) >= 2
            assert len(bot_texts(tg, STAFF, "PAY-779")) == 1  # not relayed a second time
            assert db_rows(db, "SELECT count(*) FROM ticket_messages WHERE text LIKE '%PAY-779%'") == [(1,)]
            # the SLA alert fires once, after the restart
            alert = f"#{bongani_case} has waited"
            assert wait_for(lambda: bot_texts(tg, STAFF, alert), WAIT), bot.output()
            assert not wait_for(lambda: len(bot_texts(tg, STAFF, alert)) > 1, 2.5 * SWEEP)
            # the ad draft goes on where it stopped
            run(sipho.send("/newad"))
            assert wait_for(lambda: bot_texts(tg, sipho.id, "Samsung Galaxy A54"), WAIT), bot.output()
            run(sipho.press("Continue"))
            assert wait_for(lambda: len(bot_texts(tg, sipho.id, "Step 4 of 7")) == 2, WAIT), bot.output()
            run(sipho.send("R 4 500"))
            assert wait_for(lambda: bot_texts(tg, sipho.id, "Step 5 of 7"), WAIT), bot.output()

            # --- SIGTERM while a relay is on its way: it is finished, the process exits 0
            last = server.hold("sendMessage", lambda p: str(p.get("chat_id")) == str(STAFF) and "last question" in str(p.get("text")))
            polls = len(server.polls)
            run(thandi.send("One last question about the fees"))
            last_id = last_update_id(tg)
            assert last.wait(WAIT), bot.output()
            bot.proc.send_signal(signal.SIGTERM)
            # the updater's final getUpdates (timeout 0) shows that shutdown has begun
            assert wait_for(lambda: any(str(p.get("timeout")) in ("0", "0.0") for p in server.polls[polls:]), WAIT), bot.output()
            last.release()
            assert bot.proc.wait(WAIT) == 0, bot.output()
            assert len(bot_texts(tg, STAFF, "last question about the fees")) == 1
            # it was handled after the updater's last getUpdates: the next start gets it
            # again, and drops it
            assert not server.confirmed(last_id)
            bot = BotProcess(cfg, server, tmp_path / "run4.log")
            assert wait_for(lambda: server.confirmed(last_id), WAIT), bot.output()
            assert len(bot_texts(tg, STAFF, "last question about the fees")) == 1
            assert bot.stop() == 0, bot.output()
        finally:
            if bot.proc.poll() is None:
                bot.proc.kill()
                bot.proc.wait(30)

        # one case each, every message of Thandi's case once, nothing failed
        assert db_rows(db, "SELECT user_id, count(*) FROM tickets GROUP BY user_id ORDER BY user_id") == [(thandi.id, 1), (bongani.id, 1)]
        texts = [r[0] for r in db_rows(db, "SELECT text FROM ticket_messages WHERE ticket_id = ? AND direction IN ('in', 'out') ORDER BY id", thandi_case)]
        assert texts == [
            "I paid for a featured ad twice",
            "We are checking your payment now.",
            "My reference is PAY-778",
            "Screenshot: PAY-779 was charged on the 3rd",
            "One last question about the fees",
        ]
        assert len(db_rows(db, "SELECT update_id FROM processed_updates")) >= 10
        logs = "".join((tmp_path / f"run{i}.log").read_text() for i in (1, 2, 3, 4))
        assert "Traceback" not in logs.replace("handled before", ""), logs


def backdate(db: Path, sql: str, *params: object) -> None:
    """While the bot is down, time passes: ``sql`` gets five minutes ago as its first parameter."""
    then = (datetime.now(UTC) - timedelta(minutes=5)).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(sql, (then, *params))


def test_sigkill_between_commit_and_send_is_repaired_by_the_sweep(tmp_path: Path) -> None:
    """The update's transaction committed, the bot died before its sends: the
    re-delivered update is dropped as a duplicate, and the sweep after the restart posts
    the missing card, and the staff reply that never reached the user, exactly once."""
    tg = FakeTelegram()
    tg.add_group(STAFF, "Support staff")
    naledi = tg.user(3301, "Naledi")
    agent = tg.staff(3202, "Lindiwe", STAFF)
    db = tmp_path / "run.db"
    with FakeBotServer(tg, TOKEN) as server:
        cfg = write_config(tmp_path, server)
        cfg.write_text(cfg.read_text() + f"[sla]\nsweep_seconds = {SWEEP}\n")
        bot = BotProcess(cfg, server, tmp_path / "run1.log")
        try:
            # --- kill 1: the ticket is in the database; the bot dies while telling the
            # user, before it claims and posts the staff card
            run(naledi.send("/support"))
            assert wait_for(lambda: bot_texts(tg, naledi.id, "What is it about"), WAIT), bot.output()
            run(naledi.press("Payments"))
            assert wait_for(lambda: bot_texts(tg, naledi.id, "Please describe the problem"), WAIT), bot.output()
            created = server.hold("sendMessage", lambda p: str(p.get("chat_id")) == str(naledi.id) and "is with our support team" in str(p.get("text")))
            run(naledi.send("My featured ad was charged but never shown"))
            described = last_update_id(tg)
            assert created.wait(WAIT), bot.output()
            bot.kill()
            created.release(drop=True)
            ((number, card_id, claimed),) = db_rows(db, "SELECT id, card_message_id, card_claimed_at FROM tickets")
            assert card_id is None and claimed is None and not bot_texts(tg, STAFF, "🎫")
            backdate(db, "UPDATE tickets SET escalated_at = ? WHERE id = ?", number)

            bot = BotProcess(cfg, server, tmp_path / "run2.log")
            assert wait_for(lambda: server.confirmed(described), WAIT), bot.output()
            assert wait_for(lambda: bot_texts(tg, STAFF, f"🎫 #{number} "), WAIT), bot.output()
            assert not wait_for(lambda: len(bot_texts(tg, STAFF, f"🎫 #{number} ")) > 1, 2.5 * SWEEP)
            assert db_rows(db, "SELECT count(*) FROM tickets") == [(1,)]
            card = card_of(tg, number)
            assert db_rows(db, "SELECT card_message_id FROM tickets WHERE id = ?", number) == [(card.message_id,)]

            # --- kill 2: Lindiwe's reply is stored (it claims the ticket); the bot dies
            # while telling the user who took the case, before it relays the reply
            claimed_notice = server.hold("sendMessage", lambda p: str(p.get("chat_id")) == str(naledi.id) and "is on your case" in str(p.get("text")))
            run(agent.send("We see the double charge and are refunding it.", chat_id=STAFF, reply_to=card))
            answer = last_update_id(tg)
            assert claimed_notice.wait(WAIT), bot.output()
            bot.kill()
            claimed_notice.release(drop=True)
            assert db_rows(db, "SELECT send_state FROM ticket_messages WHERE direction = 'out'") == [("pending",)]
            assert not bot_texts(tg, naledi.id, "refunding it")
            backdate(db, "UPDATE ticket_messages SET at = ? WHERE send_state = 'pending'")

            bot = BotProcess(cfg, server, tmp_path / "run3.log")
            assert wait_for(lambda: server.confirmed(answer), WAIT), bot.output()
            assert wait_for(lambda: bot_texts(tg, naledi.id, "refunding it"), WAIT), bot.output()
            assert not wait_for(lambda: len(bot_texts(tg, naledi.id, "refunding it")) > 1, 2.5 * SWEEP)
            assert db_rows(db, "SELECT send_state, delivered FROM ticket_messages WHERE direction = 'out'") == [("sent", 1)]
            assert db_rows(db, "SELECT count(*) FROM ticket_messages WHERE direction = 'out'") == [(1,)]
            assert bot.stop() == 0, bot.output()
        finally:
            if bot.proc.poll() is None:
                bot.proc.kill()
                bot.proc.wait(30)
        logs = "".join((tmp_path / f"run{i}.log").read_text() for i in (1, 2, 3))
        assert "Traceback" not in logs.replace("handled before", ""), logs
        assert "has no staff card" in logs and "was stored but never sent" in logs


def test_sigkill_between_an_ads_commit_and_its_card_is_repaired_once(tmp_path: Path) -> None:
    """An ad's submission committed and the bot died before its moderation card: the
    sweep after the restart posts the card once, and it works. A report card that
    Telegram took while the bot died waiting for the answer is never posted again."""
    tg = FakeTelegram()
    tg.add_group(STAFF, "Support staff")
    seller, buyer = tg.user(3401, "Sello"), tg.user(3402, "Buyer")
    mo = tg.staff(3203, "Moderator Mo", STAFF, status="administrator")
    db = tmp_path / "run.db"
    with FakeBotServer(tg, TOKEN) as server:
        cfg = write_config(tmp_path, server)
        cfg.write_text(cfg.read_text() + f"[sla]\nsweep_seconds = {SWEEP}\n")
        bot = BotProcess(cfg, server, tmp_path / "run1.log")
        try:
            run(seller.send("/newad"))
            assert wait_for(lambda: bot_texts(tg, seller.id, "step 1 of 7"), WAIT), bot.output()
            run(seller.press("Electronics"))
            assert wait_for(lambda: has_button(tg, seller.id, "Phones"), WAIT), bot.output()
            for step, action in (
                ("Step 2 of 7", lambda: seller.press("Phones")),
                ("Step 3 of 7", lambda: seller.send("Samsung Galaxy A54 128 GB")),
                ("Step 4 of 7", lambda: seller.send("Used for a year, no scratches, with the original box and charger.")),
                ("Step 5 of 7", lambda: seller.send("R 4 500")),
                ("Step 6 of 7", lambda: seller.send("Soweto, Johannesburg")),
                ("Step 7 of 7", lambda: seller.press("Skip photos")),
                ("Preview", lambda: seller.send("💬 Through the bot")),
            ):
                run(action())
                assert wait_for(lambda s=step: bot_texts(tg, seller.id, s), WAIT), bot.output()

            # --- kill 1: the submission is in the database; the bot dies while telling
            # the seller, before it claims and posts the moderation card
            told = server.hold("sendMessage", lambda p: str(p.get("chat_id")) == str(seller.id) and "is with our moderators" in str(p.get("text")))
            run(seller.press("Submit"))
            submitted = last_update_id(tg)
            assert told.wait(WAIT), bot.output()
            bot.kill()
            told.release(drop=True)
            ((ad_id, status, card_id, claimed),) = db_rows(db, "SELECT id, status, mod_message_id, card_claimed_at FROM ads")
            assert (status, card_id, claimed) == ("submitted", None, None) and not bot_texts(tg, STAFF, "📋 Ad")
            backdate(db, "UPDATE ads SET submitted_at = ? WHERE id = ?", ad_id)

            bot = BotProcess(cfg, server, tmp_path / "run2.log")
            assert wait_for(lambda: server.confirmed(submitted), WAIT), bot.output()
            assert wait_for(lambda: bot_texts(tg, STAFF, f"📋 Ad #{ad_id} "), WAIT), bot.output()
            assert not wait_for(lambda: len(bot_texts(tg, STAFF, f"📋 Ad #{ad_id} ")) > 1, 2.5 * SWEEP)
            with tg.lock:
                card = next(m for m in tg.chat_messages(STAFF) if m.from_bot and m.text.startswith(f"📋 Ad #{ad_id} "))
            assert db_rows(db, "SELECT mod_message_id FROM ads") == [(card.message_id,)]
            run(mo.press("Approve", card))  # the repaired card works
            assert wait_for(lambda: bot_texts(tg, seller.id, "is live"), WAIT), bot.output()
            assert db_rows(db, "SELECT status FROM ads") == [("approved",)]

            # --- kill 2: the report's card reached the staff chat, the bot never heard back
            run(buyer.send(f"/report {ad_id}"))
            assert wait_for(lambda: has_button(tg, buyer.id, "Wrong category"), WAIT), bot.output()
            posted = server.hold("sendMessage", lambda p: str(p.get("chat_id")) == str(STAFF) and "Report #" in str(p.get("text")), after=True)
            run(buyer.press("Wrong category"))
            reported = last_update_id(tg)
            assert posted.wait(WAIT), bot.output()
            bot.kill()
            posted.release(drop=True)
            assert len(bot_texts(tg, STAFF, "🚩 Report #")) == 1
            ((card_id, claimed),) = db_rows(db, "SELECT card_message_id, card_claimed_at FROM ad_reports")
            assert card_id is None and claimed is not None  # maybe arrived (it did): claimed, never posted again
            backdate(db, "UPDATE ad_reports SET created_at = ?")

            bot = BotProcess(cfg, server, tmp_path / "run3.log")
            assert wait_for(lambda: server.confirmed(reported), WAIT), bot.output()
            assert not wait_for(lambda: len(bot_texts(tg, STAFF, "🚩 Report #")) > 1, 2.5 * SWEEP)
            assert db_rows(db, "SELECT count(*) FROM ad_reports") == [(1,)]
            assert bot.stop() == 0, bot.output()
        finally:
            if bot.proc.poll() is None:
                bot.proc.kill()
                bot.proc.wait(30)
        logs = "".join((tmp_path / f"run{i}.log").read_text() for i in (1, 2, 3))
        assert "Traceback" not in logs.replace("handled before", ""), logs
        assert "waits for moderation with no card" in logs
