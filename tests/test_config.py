"""Configuration: where it is found, what overrides what, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings

GOOD = """
timezone = "Africa/Johannesburg"
[telegram]
token = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQ"
api_base_url = "http://127.0.0.1:8081"
[database]
url = "sqlite+aiosqlite:///data/helpdesk.db"
[staff]
chat_id = -1001234567890
admin_ids = [11, 22]
[kb]
path = "kb.yaml"
answer_threshold = 0.7
suggest_threshold = 0.4
[locale]
default = "en"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("HELPDESK_BOT_TOKEN", raising=False)
    s = load_settings(write(tmp_path, GOOD))
    assert s.telegram.bot_url == "http://127.0.0.1:8081/bot"
    assert s.telegram.file_url == "http://127.0.0.1:8081/file/bot"
    assert s.staff.admin_ids == [11, 22]
    assert s.kb.path == tmp_path / "kb.yaml"
    assert s.database.url == f"sqlite+aiosqlite:///{tmp_path}/data/helpdesk.db"
    s.require_for_run()


def test_example_config_is_valid_and_documents_every_key():
    root = Path(__file__).resolve().parents[1]
    example = root / "config.example.toml"
    settings = load_settings(example)
    assert settings.kb.answer_threshold > settings.kb.suggest_threshold
    text = example.read_text()
    for key in ("token", "api_base_url", "url", "chat_id", "admin_ids", "path", "answer_threshold",
                "suggest_threshold", "default", "timezone"):
        assert f"\n{key} =" in text or f"\n# {key} =" in text, key


def test_lookup_order_cli_then_env_then_cwd(tmp_path, monkeypatch):
    a = write(tmp_path, 'timezone = "UTC"', "a.toml")
    b = write(tmp_path, 'timezone = "Europe/London"', "b.toml")
    write(tmp_path, 'timezone = "Asia/Tokyo"')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELPDESK_CONFIG", str(b))
    assert load_settings(a).timezone == "UTC"
    assert load_settings().timezone == "Europe/London"
    monkeypatch.delenv("HELPDESK_CONFIG")
    assert load_settings().timezone == "Asia/Tokyo"


def test_token_from_environment_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPDESK_BOT_TOKEN", "987654321:ZZyyXXwwVVuuTTssRRqqPPooNNmmLLkkJ")
    s = load_settings(write(tmp_path, GOOD))
    assert s.telegram.token.startswith("987654321:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[kb]\nanswer_threshold = 'high'", "kb.answer_threshold: found 'high', expected a number between 0 and 1"),
        ("[kb]\nanswer_threshold = 1.5", "kb.answer_threshold: found 1.5, expected a number between 0 and 1"),
        ("[kb]\nanswer_threshold = 0.3\nsuggest_threshold = 0.5", "kb: found"),
        ("[staff]\nchat_id = 12345", "staff.chat_id: found 12345, expected the id of the private staff supergroup"),
        ("[staff]\nadmin_ids = 'me'", "staff.admin_ids: found 'me', expected a list of Telegram user ids"),
        ("timezone = 'Mars/Olympus'", "timezone: found 'Mars/Olympus', expected an IANA time zone name"),
        ("[telegram]\ntoken = 'abc'", "telegram.token: found a value of 3 characters (not shown), expected a bot token"),
        ("[database]\nurl = 'postgresql://me:S3cret@db/x'", "database.url: found 'postgresql://me:***@db/x', expected"),
        ("[telegram]\napi_base_url = 'ftp://x'", "telegram.api_base_url: found 'ftp://x', expected an http(s) URL"),
        ("[database]\nurl = 'mysql://x'", "database.url: found 'mysql://x', expected an async SQLAlchemy URL"),
        ("[locale]\ndefault = 'English'", "locale.default: found 'English', expected a locale"),
        ("[locale]\ndefault = 'fr'", "locale.default: found 'fr', expected a locale with templates (af, en)"),
        ("[kb]\nanswer_treshold = 0.5", "kb.answer_treshold: found an unknown key"),
        ("[telegram\ntoken = 1", "not valid TOML"),
        # what people get wrong on their first deployment
        ("[staff]\nchat_id = '-1001234567890'",
         "staff.chat_id: found '-1001234567890', expected the id of the private staff supergroup, a negative number "
         "like -1001234567890 (a number in quotes is text: write it without the quotes)"),
        ("[staff]\nchat_id = '@saypro_staff'", "staff.chat_id: found '@saypro_staff', expected the id of the private staff supergroup"),
        ("[staff]\nadmin_ids = ['123456789']", "staff.admin_ids: found '123456789', expected a list of Telegram user ids, like [123456789, 987654321] (a number in quotes is text"),
        ("[staff]\nadmin_ids = [123456789, -1001234567890]",
         "staff.admin_ids: found [123456789, -1001234567890], expected a list of Telegram user ids, like [123456789, 987654321] "
         "(-1001234567890 is a group's id; a person's id is positive)"),
        ("[ads]\nmoderator_ids = [-1001234567890]", "ads.moderator_ids: found [-1001234567890], expected Telegram ids of moderators"),
        ("[support.departments.it]\nchat_id = 1009876543210",
         "support.departments.it.chat_id: found 1009876543210, expected the id of the department's own staff supergroup"),
        ("[ads]\nchannel_id = 1001112223334", "ads.channel_id: found 1001112223334, expected the id of the channel approved ads are posted to, a negative number"),
        ("[support]\nreopen_dayz = 7", "support.reopen_dayz: found an unknown key, expected only the keys of config.example.toml (did you mean reopen_days?)"),
        ("[telgram]\ntoken = ''", "telgram: found an unknown key, expected only the keys of config.example.toml (did you mean telegram?)"),
        ("[database]\nurl = 'postgresql://me:S3cret@db/x'", "(write postgresql+asyncpg:// instead of postgresql://)"),
        ("[database]\nurl = 'postgres://db/x'", "(write postgresql+asyncpg:// instead of postgres://)"),
        ("[database]\nurl = 'postgresql+psycopg2://db/x'", "(write postgresql+asyncpg:// instead of postgresql+psycopg2://)"),
        ("[database]\nurl = 'sqlite:///helpdesk.db'", "(write sqlite+aiosqlite:// instead of sqlite://)"),
        ("[kb]\nsuggest_threshold = -0.1", "kb.suggest_threshold: found -0.1, expected a number between 0 and 1"),
        ("[sla]\nsweep_seconds = 1", "sla.sweep_seconds: found 1, expected seconds between SLA sweeps, 5-3600"),
        ("[reports]\ntimezone = 'SAST'", "reports.timezone: found 'SAST', expected an IANA time zone name"),
    ],
)
def test_each_mistake_is_one_line_naming_file_key_found_expected(tmp_path, monkeypatch, text, expected):
    monkeypatch.delenv("HELPDESK_BOT_TOKEN", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    lines = info.value.lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: ")
    assert expected in lines[0]
    assert "S3cret" not in lines[0]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml")
    assert "file not found" in str(info.value) and "config.example.toml" in str(info.value)


def test_run_without_token_or_staff_chat_stops_with_clear_lines_and_no_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HELPDESK_BOT_TOKEN", raising=False)
    path = write(tmp_path, "[kb]\nanswer_threshold = 0.7\n")
    assert main(["--config", str(path), "run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{path}: telegram.token: found nothing" in err
    assert f"{path}: staff.chat_id: found nothing" in err


def test_cli_reports_bad_value_without_traceback(tmp_path, capsys):
    path = write(tmp_path, "[kb]\nsuggest_threshold = 'low'\n")
    assert main(["--config", str(path), "kb", "validate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kb.suggest_threshold" in err and "Traceback" not in err


TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQ"


def example_copy(folder: Path, **replace: str) -> Path:
    """config.example.toml copied where a team keeps it (not the repo), filled in the
    way README's 'Running for real' says, plus ``replace``: {'old line': 'new line'}."""
    text = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('token = ""', f'token = "{TOKEN}"', 1)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    folder.mkdir(parents=True, exist_ok=True)
    return write(folder, text)


def test_example_copied_outside_the_repository_finds_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.delenv("HELPDESK_BOT_TOKEN", raising=False)
    settings = load_settings(example_copy(tmp_path / "etc"))
    settings.require_for_run()
    assert settings.kb.path.is_file(), settings.kb.path
    assert settings.ads.policy_path.is_file(), settings.ads.policy_path
    assert settings.database.url == f"sqlite+aiosqlite:///{tmp_path}/etc/helpdesk.db"


@pytest.mark.parametrize(
    ("key", "line", "expected"),
    [
        ("kb.path", '# path = "faq.yaml"', "kb.path: {dir}/faq.yaml: file not found"),
        ("ads.policy_path", '# policy_path = "policy.toml"', "ads.policy_path: {dir}/policy.toml: file not found"),
    ],
)
def test_run_with_a_missing_file_names_the_key_before_touching_the_database(tmp_path, monkeypatch, capsys, key, line, expected):
    monkeypatch.delenv("HELPDESK_BOT_TOKEN", raising=False)
    path = example_copy(tmp_path, **{line: line.removeprefix("# ")})
    assert main(["--config", str(path), "run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"{path}: " + expected.format(dir=tmp_path)), err
    assert "relative to the config file's folder" in err and f"leave {key} out" in err
    assert not (tmp_path / "helpdesk.db").exists()  # stopped before the database


def test_run_with_a_broken_policy_file_names_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HELPDESK_BOT_TOKEN", raising=False)
    (tmp_path / "policy.toml").write_text("[severity\n", encoding="utf-8")
    path = example_copy(tmp_path, **{'# policy_path = "policy.toml"': 'policy_path = "policy.toml"'})
    assert main(["--config", str(path), "run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"{path}: ads.policy_path: {tmp_path}/policy.toml: not valid TOML"), err


@pytest.mark.parametrize("command", [["migrate"], ["kb", "import"], ["kb", "validate"], ["report"], ["backup", "--out", "x.db"]])
def test_a_config_named_but_missing_stops_every_command(tmp_path, monkeypatch, capsys, command):
    """A typo in --config or $HELPDESK_CONFIG must not quietly use the defaults (a fresh
    SQLite file in the current folder, the KB imported where the bot never reads it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
    assert main(["--config", "/etc/helpdesk/config.tml", *command]) == 2
    assert "/etc/helpdesk/config.tml: file not found" in capsys.readouterr().err
    monkeypatch.setenv("HELPDESK_CONFIG", str(tmp_path / "nope.toml"))
    assert main(command) == 2
    assert f"{tmp_path}/nope.toml: file not found" in capsys.readouterr().err
    assert not (tmp_path / "helpdesk.db").exists()


def test_without_any_config_the_defaults_are_said(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
    assert main(["migrate"]) == 0
    err = capsys.readouterr().err
    assert f"no config file (config.toml in {tmp_path}, --config or HELPDESK_CONFIG): using the defaults" in err
    assert f"database sqlite+aiosqlite:///{tmp_path}/helpdesk.db" in err


def test_config_may_follow_the_command_name(tmp_path, monkeypatch, capsys):
    """systemd units and shell history put it there: ``helpdesk run --config FILE``."""
    monkeypatch.delenv("HELPDESK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
    path = write(tmp_path, "[kb]\nanswer_threshold = 0.7\n")
    assert main(["run", "--config", str(path)]) == 2
    assert f"{path}: telegram.token: found nothing" in capsys.readouterr().err
    assert main(["kb", "validate", "--config", str(path)]) == 0
    assert "entries" in capsys.readouterr().out
    assert main(["--config", str(tmp_path / "other.toml"), "migrate", "--config", str(path)]) == 0  # the last one wins
    assert (tmp_path / "helpdesk.db").exists()
