"""Memory: resident size of the bot with a 500-entry knowledge base and 10,000 users.

Builds a 500-entry knowledge base from the HWU64 training phrasings (each intent's
phrasings split over several entries, about 20 phrasings each), starts the real
Application against the in-process fake Bot API on a SQLite file, then lets 10,000
distinct users each ask one question (a day's worth of active users) and prints the
process's resident set size (VmRSS) at each stage. What the fake API records is
dropped as it goes, so the figures are the bot's own.

    python -m benchmarks.memory [--entries 500] [--users 10000] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import logging
import tempfile
from pathlib import Path

from bot.app import build_app, running
from bot.config import parse_settings
from bot.fake_telegram import FakeTelegram
from bot.migrate import upgrade
from kb.kbfile import EntrySpec, KbDocument, _same_words, dump_kb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared/data/hwu64"
STAFF_CHAT = -1001000000001


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def knowledge_base(data_dir: Path, entries: int) -> tuple[KbDocument, list[str]]:
    """``entries`` entries made of HWU64 training phrasings, and the test questions."""
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    with open(data_dir / "train.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = _same_words(row["text"])
            if key and key not in seen:  # the KB file refuses one phrasing in two entries
                seen.add(key)
                rows.append((row["intent"], row["text"].strip()))
    rows.sort()
    size = max(1, len(rows) // entries)
    specs: list[EntrySpec] = []
    for n in range(entries):
        group = rows[n * size : (n + 1) * size]
        if not group:
            break
        intent = group[0][0]
        specs.append(EntrySpec(id=f"entry-{n + 1}", title=f"{intent} ({n + 1})", category="general",
                               answer=f"An answer about {intent} ({n + 1}).", phrasings=tuple(t for _, t in group)))
    with open(data_dir / "test.csv", newline="", encoding="utf-8") as f:
        questions = [row["text"] for row in csv.DictReader(f)]
    return KbDocument(entries=specs), questions


async def main_async(entries: int, users: int, data_dir: Path) -> None:
    logging.basicConfig(level=logging.ERROR)
    stages: list[tuple[str, float]] = [("Python + the bot's modules imported", rss_mb())]
    doc, questions = knowledge_base(data_dir, entries)
    phrasings = sum(len(e.phrasings) for e in doc.entries)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kb_path = folder / "kb.yaml"
        kb_path.write_text(dump_kb(doc), encoding="utf-8")
        url = f"sqlite+aiosqlite:///{folder / 'memory.db'}"
        await asyncio.to_thread(upgrade, url)
        settings = parse_settings({"database": {"url": url}, "staff": {"chat_id": STAFF_CHAT}, "kb": {"path": str(kb_path)}}, "<bench>", folder)
        tg = FakeTelegram()
        tg.add_group(STAFF_CHAT, "Staff")
        app = build_app(settings, request=tg)
        tg.attach(app)
        async with running(app):
            loaded = len(app.bot_data["desk"].kb.entries)
            if loaded != len(doc.entries):
                raise RuntimeError(f"the knowledge base was not imported ({loaded} of {len(doc.entries)} entries)")
            gc.collect()
            stages.append((f"bot started, {len(doc.entries)} entries / {phrasings} phrasings loaded", rss_mb()))
            for i in range(users):
                user = tg.user(8_000_000 + i, f"User{i}")
                await user.send(questions[i % len(questions)])
                tg.chats.pop(user.id, None)
                if i % 200 == 0:
                    tg.calls.clear()
                    tg.events.clear()
                    tg.messages.clear()
            gc.collect()
            stages.append((f"after {users:,} users asked a question each", rss_mb()))
    print(f"Memory, resident set size of one bot process (VmRSS, MB)")
    for label, mb in stages:
        print(f"  {label:60} {mb:8.1f}")
    print(f"  {'growth per 1,000 active users':60} {(stages[-1][1] - stages[-2][1]) / users * 1000:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    asyncio.run(main_async(args.entries, args.users, args.data))


if __name__ == "__main__":
    main()
