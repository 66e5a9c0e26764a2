"""``helpdesk backup``: a consistent SQLite copy while a writer keeps writing."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from bot.cli import main
from bot.migrate import upgrade

BATCH = 25  # rows per write transaction: a consistent copy holds whole batches only


def write_config(tmp_path, url):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n[staff]\nchat_id = -1009999\n')
    return cfg


def test_backup_while_a_writer_is_writing(tmp_path, capsys):
    db = tmp_path / "live.db"
    upgrade(f"sqlite+aiosqlite:///{db}")
    cfg = write_config(tmp_path, f"sqlite+aiosqlite:///{db}")
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        n = 0
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(BATCH):
                n += 1
                conn.execute(
                    "INSERT INTO users (id, first_name, status, first_seen, last_seen) VALUES (?, ?, 'active', '2026-11-02 09:00:00', '2026-11-02 09:00:00')",
                    (n, "x" * 200),
                )
            conn.execute("COMMIT")
            written[0] = n
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while written[0] < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        copies = []
        for i in range(3):  # several copies, each in the middle of the writing
            out = tmp_path / f"backup-{i}.db"
            assert main(["--config", str(cfg), "backup", "--out", str(out)]) == 0
            copies.append(out)
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert "integrity ok" in capsys.readouterr().out
    counts = []
    for out in copies:
        copy = sqlite3.connect(out)
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA foreign_key_check").fetchall() == []
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() is not None
        n = copy.execute("SELECT count(*) FROM users").fetchone()[0]
        assert n > 0 and n % BATCH == 0, n  # whole transactions only
        assert copy.execute("SELECT max(id) FROM users").fetchone()[0] == n  # no gaps: a snapshot, not a mix
        counts.append(n)
        copy.close()
    assert counts == sorted(counts) and counts[-1] <= written[0]
    assert not list(tmp_path.glob("*.partial"))


def test_backup_of_postgresql_points_to_pg_dump(tmp_path, capsys):
    cfg = write_config(tmp_path, "postgresql+asyncpg://helpdesk:s3cret@db.example:5432/helpdesk")
    assert main(["--config", str(cfg), "backup", "--out", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert "pg_dump --format=custom --file=helpdesk.dump --host=db.example --port=5432 --username=helpdesk helpdesk" in err
    assert "s3cret" not in err
    assert not (tmp_path / "x.db").exists()


def test_backup_refuses_a_missing_database_and_overwriting_itself(tmp_path, capsys):
    cfg = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/none.db")
    assert main(["--config", str(cfg), "backup", "--out", str(tmp_path / "x.db")]) == 2
    db = tmp_path / "live.db"
    upgrade(f"sqlite+aiosqlite:///{db}")
    cfg = write_config(tmp_path, f"sqlite+aiosqlite:///{db}")
    assert main(["--config", str(cfg), "backup", "--out", str(db)]) == 2
    assert "must not be the database itself" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [["backup", "--out", "{d}/x.db"], ["report", "--period", "2026-10", "--out", "{d}/r.html"], ["kb", "export", "--out", "{d}/faq.yaml"]],
)
def test_out_in_a_missing_folder_is_one_clear_line(tmp_path, capsys, command):
    """README's own example (``--out backups/helpdesk-$(date +%F).db``) on a fresh machine."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/h.db"\n')
    assert main(["--config", str(cfg), "migrate"]) == 0
    missing = tmp_path / "backups"
    args = [a.format(d=missing) for a in command]
    assert main(["--config", str(cfg), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"--out: the folder {missing} does not exist; create it (mkdir -p {missing}) or choose another file" in err
