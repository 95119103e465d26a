"""Rounding helpers: nothing security-relevant here."""

from decimal import ROUND_HALF_EVEN, Decimal


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))
