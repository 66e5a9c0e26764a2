"""``helpdesk run`` meeting what a first deployment gets wrong outside the config file:
a Bot API server it cannot reach or that is not one, a webhook Telegram refuses, a
database it cannot open. Each is one line naming the key, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from bot.cli import main
from bot.fake_bot_server import FakeBotServer
from bot.fake_telegram import FakeTelegram
from tests.support import PG_URL
from tests.test_run_process import ROOT, TOKEN, write_config
from tests.test_webhook import SECRET, free_port


def helpdesk(cfg, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELPDESK_BOT_TOKEN": TOKEN, **(env or {})}
    env.pop("HELPDESK_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(cfg), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def one_clear_line(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """Exit status 2: only a change of the configuration helps; 1: a server out of
    reach, which may pass (systemd starts the bot again, see README)."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stdout + result.stderr and TOKEN.split(":")[1] not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_bot_api_server_that_does_not_answer_names_api_base_url(tmp_path):
    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    cfg = write_config(tmp_path, Nowhere)
    line = one_clear_line(helpdesk(cfg, "run"), status=1)
    assert line.startswith(f"{cfg}: telegram.api_base_url: cannot reach the Bot API server at {Nowhere.url} ("), line
    assert "check the address" in line
    assert not (tmp_path / "run.db").exists()  # stopped before the database


def test_a_server_that_is_not_a_bot_api_server_names_the_token_and_the_url(tmp_path):
    with FakeBotServer(FakeTelegram(), TOKEN) as server:

        class Elsewhere:
            url = f"{server.url}/not-the-api"  # every path there is a 404, as on a web server

        cfg = write_config(tmp_path, Elsewhere)
        line = one_clear_line(helpdesk(cfg, "run"))
    assert line.startswith(f"{cfg}: telegram.token: the Bot API server rejected the token"), line
    assert f"telegram.api_base_url ({Elsewhere.url})" in line


def test_a_flood_limit_on_getme_at_start_may_pass_and_is_not_a_config_mistake(tmp_path):
    """Telegram (or a local Bot API server) answers getMe with 429 (a bot started again
    and again by its service manager): that passes with time, so exit status 1 (systemd
    starts it again; 2 would keep the bot down, RestartPreventExitStatus=2) and a line
    that says so, not "not a Bot API server, check the address"."""
    tg = FakeTelegram()
    with FakeBotServer(tg, TOKEN) as server:
        tg.fail("getMe", "flood", retry_after=30, times=5)
        cfg = write_config(tmp_path, server)
        line = one_clear_line(helpdesk(cfg, "run"), status=1)
    assert line.startswith(f"{cfg}: telegram.api_base_url: "), line
    assert "flood" in line.lower() or "retry" in line.lower(), line
    assert "did not answer getMe like a Bot API server" not in line
    assert not (tmp_path / "run.db").exists()  # stopped before the database


def test_a_webhook_telegram_refuses_is_one_line_and_the_bot_stops(tmp_path):
    tg = FakeTelegram()
    with FakeBotServer(tg, TOKEN) as server:
        server.refuse_webhook = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
        cfg = write_config(tmp_path, server)
        port = free_port()
        cfg.write_text(
            cfg.read_text().replace(
                "[telegram]\n", f'[telegram]\nwebhook_url = "http://bot.example.com/hook"\nwebhook_listen = "127.0.0.1"\nwebhook_port = {port}\n'
            )
        )
        result = helpdesk(cfg, "run", "--webhook", env={"HELPDESK_WEBHOOK_SECRET": SECRET})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or " CRITICAL " in line]
    errors = [line for line in errors if "staff chat" not in line]  # the fake has no staff chat
    assert len(errors) == 1, result.stderr
    assert "telegram.webhook_url: telegram refused http://bot.example.com/hook (bad webhook: an https url must be provided" in errors[0].lower()
    assert "it needs an https URL on port 443, 80, 88 or 8443" in errors[0]  # what Telegram accepts
    assert server.webhook is None


def with_database(cfg, url: str) -> None:
    text = cfg.read_text()
    start = text.index('url = "sqlite')
    cfg.write_text(text[:start] + f'url = "{url}"' + text[text.index("\n", start):])


def test_a_postgresql_server_out_of_reach_names_database_url_without_the_password(tmp_path):
    with FakeBotServer(FakeTelegram(), TOKEN) as server:
        cfg = write_config(tmp_path, server)
        port = free_port()
        with_database(cfg, f"postgresql+asyncpg://helpdesk:S3cret@127.0.0.1:{port}/helpdesk")
        line = one_clear_line(helpdesk(cfg, "run"), status=1)
    assert line.startswith(f"{cfg}: database.url: cannot connect to postgresql+asyncpg://helpdesk:***@127.0.0.1:{port}/helpdesk ("), line
    assert "check that PostgreSQL runs there" in line and "S3cret" not in line


def test_a_sqlite_file_in_a_missing_folder_names_database_url(tmp_path):
    with FakeBotServer(FakeTelegram(), TOKEN) as server:
        cfg = write_config(tmp_path, server)
        with_database(cfg, "sqlite+aiosqlite:///no-such-folder/helpdesk.db")
        line = one_clear_line(helpdesk(cfg, "run"))
    assert line.startswith(f"{cfg}: database.url: cannot open the SQLite file {tmp_path}/no-such-folder/helpdesk.db ("), line
    assert f"check that the folder {tmp_path}/no-such-folder exists" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_a_sqlite_file_this_user_may_not_write_names_database_url(tmp_path):
    """Reading works, so without a write check the bot would stop at its first write
    with exit status 1, and a service manager would start it again and again."""
    with FakeBotServer(FakeTelegram(), TOKEN) as server:
        cfg = write_config(tmp_path, server)
        db = tmp_path / "run.db"
        sqlite3.connect(db).close()
        db.chmod(0o444)
        line = one_clear_line(helpdesk(cfg, "run"))
    assert line.startswith(f"{cfg}: database.url: cannot open the SQLite file {db} ("), line
    assert "readonly" in line and "that this user may write there" in line


@pytest.mark.parametrize("command", [["migrate"], ["kb", "import"], ["kb", "export"], ["report", "--period", "2026-10"]])
def test_every_command_that_uses_the_database_says_the_same(tmp_path, capsys, command):
    cfg = tmp_path / "config.toml"
    port = free_port()
    cfg.write_text(f'[database]\nurl = "postgresql+asyncpg://helpdesk:S3cret@127.0.0.1:{port}/helpdesk"\n')
    assert main(["--config", str(cfg), *command]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "S3cret" not in err
    assert f"{cfg}: database.url: cannot connect to postgresql+asyncpg://helpdesk:***@127.0.0.1:{port}/helpdesk (" in err


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
def test_a_postgresql_database_that_does_not_exist_says_createdb(tmp_path, capsys):
    url = make_url(PG_URL).set(database="helpdesk_no_such_database")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{url.render_as_string(hide_password=False)}"\n')
    assert main(["--config", str(cfg), "migrate"]) == 2  # starting again would not help
    err = capsys.readouterr().err
    assert 'database "helpdesk_no_such_database" does not exist' in err and "createdb" in err


def pg_url_with(**parts: str) -> str:
    return make_url(PG_URL).set(**parts).render_as_string(hide_password=False)  # type: ignore[arg-type]


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
@pytest.mark.parametrize(
    ("parts", "said", "todo"),
    [
        ({"database": "helpdesk_no_such_database"}, 'database "helpdesk_no_such_database" does not exist', "create the database (createdb"),
        ({"username": "helpdesk_no_such_role"}, 'role "helpdesk_no_such_role" does not exist', "check the user name in database.url"),
    ],
    ids=["database", "role"],
)
def test_what_postgresql_refuses_for_good_is_a_configuration_mistake(tmp_path, parts, said, todo):
    """A database or a user that does not exist (or a wrong password) does not pass with
    time: exit status 2, so that systemd (RestartPreventExitStatus=2) does not start the
    bot again and again; the line names the problem, never the password."""
    with FakeBotServer(FakeTelegram(), TOKEN) as server:
        cfg = write_config(tmp_path, server)
        with_database(cfg, pg_url_with(password="S3cret", **parts))
        line = one_clear_line(helpdesk(cfg, "run"), status=2)
    shown = make_url(pg_url_with(password="S3cret", **parts)).render_as_string(hide_password=True)
    assert line.startswith(f"{cfg}: database.url: PostgreSQL refused {shown} ({said}"), line
    assert todo in line and "S3cret" not in line
