from decimal import Decimal

from app.money import to_cents


def test_to_cents():
    assert to_cents(Decimal("1.005")) == 100
