"""The seeded catalogue of ``FakeTwoChat``: number groups and the numbers they hold."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["FakeGroup", "default_catalogue"]


@attrs.define
class FakeGroup:
    """A number group of the fake, in 2Chat's group shape, with its numbers.

    Attributes:
        id: The group id.
        country: ISO 3166 alpha-2 code of the group's country.
        numbers: Every E.164 number of the group, sold or not.
        prefix: The dialling prefix shown to people, e.g. ``"+1 (213)"``.
        location: The city or area name.
        type: The DID type name, e.g. ``"local"``.
        setup_price: Setup price, a decimal string.
        monthly_price: Monthly price, a decimal string.
        requirements: Documents needed to buy a number of the group.
        allow_number_selection: Whether a specific number may be chosen.
        features: What the numbers support.
    """

    id: str
    country: str
    numbers: list[str]
    prefix: str = ""
    location: str = ""
    type: str = "local"
    setup_price: str = "0.00"
    monthly_price: str = "3.50"
    requirements: list[dict[str, Any]] = attrs.field(factory=list)
    allow_number_selection: bool = True
    features: list[str] = attrs.field(factory=lambda: ["voice", "sms_in", "sms_out"])


def default_catalogue() -> list[FakeGroup]:
    """Return a fresh copy of the seeded groups (each fake owns its own state)."""
    return [
        FakeGroup(
            id="abc-123",
            country="US",
            prefix="+1 (213)",
            location="Los Angeles",
            numbers=["+12135551234", *(f"+1213555{n:04d}" for n in range(1235, 1245))],
            features=["voice", "sms_in", "sms_out", "whatsapp_business"],
        ),
        FakeGroup(
            id="tf-800",
            country="US",
            prefix="+1 (800)",
            location="United States",
            type="tollfree",
            setup_price="1.00",
            monthly_price="5.00",
            numbers=[f"+1800555{n:04d}" for n in range(100, 105)],
            allow_number_selection=False,
        ),
    ]
