"""Jinja2 templates for every text the bot sends.

Templates live in ``bot/templates/<locale>/``; a deployment may add a folder of its own
(``locale.templates_dir``) whose files override or add to the shipped ones. Messages are
``*.html`` (Telegram HTML, autoescape on: user text can never inject markup). Button
labels and pop-up notices are plain-text strings set in ``labels.j2``.

A user's locale comes from their Telegram ``language_code`` ("pt-BR" -> "pt_BR" -> "pt")
when a folder for it exists, else the default locale; a template missing from a locale
falls back to the default locale's.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

SHIPPED = Path(__file__).resolve().parent / "templates"


class Templates:
    def __init__(self, default_locale: str = "en", extra_dir: Path | None = None):
        self.dirs = [d for d in (extra_dir, SHIPPED) if d is not None]
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in self.dirs]),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        # plain-text templates (topic names, ...): Telegram does not parse them as HTML
        self.plain_env = Environment(
            loader=self.env.loader, autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
        )
        self.locales = sorted({p.name for d in self.dirs if d.is_dir() for p in d.iterdir() if p.is_dir()})
        if default_locale not in self.locales:
            raise ValueError(f"locale {default_locale!r} has no templates (have: {', '.join(self.locales)})")
        self.default = default_locale
        self._labels: dict[str, Any] = {}
        self.locale_for = lru_cache(maxsize=256)(self._locale_for)

    def _locale_for(self, language_code: str | None) -> str:
        if not language_code:
            return self.default
        code = language_code.replace("-", "_")
        parts = code.split("_")
        candidates = [f"{parts[0].lower()}_{parts[1].upper()}"] if len(parts) > 1 else []
        candidates.append(parts[0].lower())
        for candidate in candidates:
            if candidate in self.locales:
                return candidate
        return self.default

    def locale_of(self, chosen: str | None, language_code: str | None) -> str:
        """A user's locale: the one they chose (/language) if shipped, else their
        Telegram language's, else the default."""
        if chosen and chosen in self.locales:
            return chosen
        return self.locale_for(language_code)

    def _template(self, name: str, locale: str):  # type: ignore[no-untyped-def]
        try:
            return self.env.get_template(f"{locale}/{name}")
        except TemplateNotFound:
            if locale == self.default:
                raise
            return self.env.get_template(f"{self.default}/{name}")

    def render(self, name: str, locale: str, /, **context: Any) -> str:
        """Render a message template to Telegram HTML (stripped)."""
        return self._template(name, locale).render(**context).strip()

    def render_plain(self, name: str, locale: str, /, **context: Any) -> str:
        """A plain-text template (not HTML: nothing is escaped), e.g. a forum topic name."""
        try:
            template = self.plain_env.get_template(f"{locale}/{name}")
        except TemplateNotFound:
            template = self.plain_env.get_template(f"{self.default}/{name}")
        return template.render(**context).strip()

    def label(self, locale: str, key: str, /, **context: Any) -> str:
        """A plain-text string (button label, pop-up notice) from ``labels.j2``."""
        module = self._labels.get(locale)
        if module is None:
            module = self._template("labels.j2", locale).module
            self._labels[locale] = module
        value = getattr(module, key, None)
        if value is None and locale != self.default:
            return self.label(self.default, key, **context)
        if value is None:
            raise KeyError(f"no label {key!r} in {locale}/labels.j2")
        return str(value).format(**context) if context else str(value)
