"""Locales picked from Telegram's language_code, and the token never in a log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.logs import RedactTokens
from bot.templates import Templates

EXTRA = Path(__file__).resolve().parent / "data" / "templates"


def test_locale_choice_and_fallback():
    t = Templates("en", EXTRA)
    assert set(t.locales) >= {"en", "af"}
    assert t.locale_for("af") == "af"
    assert t.locale_for("af-ZA") == "af"
    assert t.locale_for("pt-BR") == "en"
    assert t.locale_for(None) == "en"
    # a template the locale lacks falls back to the default locale's
    assert "Step 2 of 7" in t.render("ads/step_title.html", "af", min=5, max=70)
    # labels too: the af file sets only one
    assert t.label("af", "menu_ask") == "❓ Vra 'n vraag"
    assert t.label("af", "menu_help") == "ℹ️ Help"


def test_autoescape_is_on_for_every_template():
    t = Templates("en")
    out = t.render("start.html", "en", name="<a href='x'>&")
    assert "&lt;a href=&#39;x&#39;&gt;&amp;" in out


@pytest.mark.parametrize("settings_overrides", [{"locale": {"templates_dir": str(EXTRA)}}])
async def test_user_language_picks_the_locale(desk):
    boer = desk.tg.user(201, "Annelie", language_code="af")
    await boer.send("/start")
    msg = [m for m in desk.tg.chat_messages(201) if m.from_bot][0]  # the greeting (then the first-time tour)
    assert msg.text.startswith("👋 Hallo, Annelie!")
    assert msg.button_texts[:2] == ["❓ Vra 'n vraag", "📝 Post an ad"]  # this af/labels.j2 sets only menu_ask
    # the Afrikaans menu label works as a menu item, not as a question
    await boer.send("❓ Vra 'n vraag")
    assert await desk.scalar("SELECT count(*) FROM questions") == 0
    english = desk.tg.user(202, "John", language_code="en-GB")
    await english.send("/start")
    assert [m for m in desk.tg.chat_messages(202) if m.from_bot][0].text.startswith("👋 Hello, John!")


def test_token_is_redacted_from_messages_args_and_tracebacks():
    token = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQ"
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    logger = logging.getLogger("test.redact")
    handler = Keep()
    handler.addFilter(RedactTokens([token]))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("HTTP Request: POST https://api.telegram.org/bot%s/getMe", token)
        try:
            raise RuntimeError(f"failed https://api.telegram.org/bot{token}/x")
        except RuntimeError:
            logger.exception("boom")
        logger.warning("another 987654321:ZZyyXXwwVVuuTTssRRqqPPooNNmmLLkkJ here")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert "AAbbCC" not in text and "ZZyyXX" not in text
    assert text.count("[REDACTED]") >= 3
