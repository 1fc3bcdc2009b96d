"""The seeded catalogue of ``FakeTwoChat``: number groups and the numbers they hold."""

from __future__ import annotations

from typing import Any

import attrs

# The public names of this module; twochat_async.testing exports them.
__all__ = ["FakeGroup", "default_catalogue"]

#: Regions in 2Chat's shape (2Chat has them for US, CA and GB).
REGIONS: list[dict[str, Any]] = [
    {"id": 123, "region_name": "California", "iso_country_code": "US"},
    {"id": 124, "region_name": "New York", "iso_country_code": "US"},
    {"id": 201, "region_name": "Ontario", "iso_country_code": "CA"},
]

#: The countries whose number groups 2Chat searches only within a region ("Required for
#: US"): the fake refuses a search of them without ``region_id``, with 422.
REGION_REQUIRED = frozenset({"US"})

#: Cities in 2Chat's shape, each with the id of its region (None outside US, CA, GB).
CITIES: list[tuple[int | None, dict[str, Any]]] = [
    (123, {"id": 456, "city_name": "Los Angeles", "iso_country_code": "US"}),
    (123, {"id": 457, "city_name": "San Francisco", "iso_country_code": "US"}),
    (124, {"id": 458, "city_name": "New York City", "iso_country_code": "US"}),
    (201, {"id": 500, "city_name": "Toronto", "iso_country_code": "CA"}),
    (None, {"id": 600, "city_name": "Berlin", "iso_country_code": "DE"}),
]

#: DID types in 2Chat's shape.
DID_TYPES: list[dict[str, Any]] = [
    {"id": 1, "name": "local"},
    {"id": 2, "name": "mobile"},
    {"id": 3, "name": "tollfree"},
    {"id": 4, "name": "national"},
    {"id": 5, "name": "global"},
    {"id": 6, "name": "sharedcost"},
]

#: Requirements by country, each with the DID type id it applies to (free-form objects).
REQUIREMENTS: dict[str, list[tuple[int, dict[str, Any]]]] = {
    "DE": [
        (
            1,
            {
                "id": "req-de-address",
                "type": "address",
                "description": "A German address",
                "fields": ["street", "city", "postal_code"],
            },
        ),
        (
            1,
            {
                "id": "req-de-identity",
                "type": "identity",
                "description": "Proof of identity",
                "documents": ["passport", "id_card"],
            },
        ),
        (
            2,
            {
                "id": "req-de-mobile",
                "type": "identity",
                "description": "Proof of identity",
                "documents": ["id_card"],
            },
        ),
    ],
}


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
        region_id: The id of the group's region; ``None`` for a group of the whole country
            (toll-free), which a search of any of the country's regions lists.
        city_id: The id of the group's city, if any.
        is_eligible_for_free_number: Whether the account's free number may come from here.
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
    region_id: int | None = None
    city_id: int | None = None
    is_eligible_for_free_number: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the group as Search Number Groups shows it."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "location": self.location,
            "price": {"setup_price": self.setup_price, "monthly_price": self.monthly_price},
            "type": self.type,
            "requirements": self.requirements,
            "allow_number_selection": self.allow_number_selection,
            "is_eligible_for_free_number": self.is_eligible_for_free_number,
            "features": self.features,
        }


def default_catalogue() -> list[FakeGroup]:
    """Return a fresh copy of the seeded groups (each fake owns its own state)."""
    return [
        FakeGroup(
            id="abc-123",
            country="US",
            prefix="+1 (213)",
            location="Los Angeles",
            region_id=123,
            city_id=456,
            numbers=["+12135551234", *(f"+1213555{n:04d}" for n in range(1235, 1245))],
            features=["voice", "sms_in", "sms_out", "whatsapp_business"],
        ),
        FakeGroup(
            id="nyc-212",
            country="US",
            prefix="+1 (212)",
            location="New York City",
            region_id=124,
            city_id=458,
            monthly_price="4.25",
            numbers=[f"+1212555{n:04d}" for n in range(2000, 2005)],
            is_eligible_for_free_number=True,
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
        FakeGroup(
            id="ber-30",
            country="DE",
            prefix="+49 (30)",
            location="Berlin",
            city_id=600,
            setup_price="2.50",
            monthly_price="6.99",
            numbers=[f"+493055501{n:02d}" for n in range(0, 5)],
            requirements=[{"type": "address"}, {"type": "identity"}],
        ),
    ]
