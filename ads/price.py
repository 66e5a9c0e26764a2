"""Prices as people type them: "1500", "R 1 500", "1,500.00", "free", "negotiable"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

FREE_WORDS = {"free", "gratis", "mahala", "0"}
NEGOTIABLE_WORDS = {"negotiable", "neg", "nego", "ono", "poa", "make an offer", "offers", "best offer"}
MAX_PRICE = Decimal("1000000000")


class PriceError(ValueError):
    """Why a price was not understood: 'not_a_number', 'negative' or 'too_large'."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Price:
    kind: str  # fixed | free | negotiable
    amount: Decimal | None = None  # for fixed prices (and "R 500 negotiable")

    @property
    def value(self) -> float | None:
        return float(self.amount) if self.amount is not None else (0.0 if self.kind == "free" else None)


def parse_price(text: str, currency_symbols: tuple[str, ...] = ("R", "ZAR")) -> Price:
    raw = " ".join(text.strip().split()).casefold()
    if raw in FREE_WORDS:
        return Price("free", Decimal(0))
    negotiable = False
    for word in sorted(NEGOTIABLE_WORDS, key=len, reverse=True):
        if raw == word:
            return Price("negotiable")
        if raw.endswith(" " + word) or raw.endswith("(" + word + ")"):
            negotiable = True
            raw = raw[: raw.rfind(word)].rstrip(" (")
            break
    for symbol in sorted(currency_symbols, key=len, reverse=True):
        symbol = symbol.casefold()
        if raw.startswith(symbol):
            raw = raw[len(symbol):].strip()
        elif raw.endswith(symbol):
            raw = raw[: -len(symbol)].strip()
    if raw.startswith("-") or raw.startswith("−"):
        raise PriceError("negative")
    if not re.fullmatch(r"\d[\d\s,.']*", raw):
        raise PriceError("not_a_number")
    amount = _number(raw)
    if amount > MAX_PRICE:
        raise PriceError("too_large")
    return Price("negotiable" if negotiable else "fixed", amount)


def _number(raw: str) -> Decimal:
    digits = raw.replace(" ", "").replace("'", "")
    # "1,500.00" / "1.500,00" / "1,500" / "1500.5": the last separator followed by
    # one or two digits is the decimal point, the others group thousands.
    match = re.fullmatch(r"(.*?)([.,])(\d{1,2})", digits)
    if match and re.fullmatch(r"[\d,.]*\d|", match.group(1)):
        whole, frac = match.group(1), match.group(3)
    else:
        whole, frac = digits, ""
    whole = whole.replace(",", "").replace(".", "")
    try:
        return Decimal(f"{whole or 0}.{frac or 0}").quantize(Decimal("0.01"))
    except InvalidOperation:
        raise PriceError("not_a_number") from None
