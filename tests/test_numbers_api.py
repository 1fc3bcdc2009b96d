"""The whole Numbers API on TwoChatSession, end to end over 127.0.0.1 against FakeTwoChat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from twochat_async import (
    AccountInfo,
    APIError,
    AvailableNumber,
    City,
    DidType,
    InvalidResponseError,
    NotFoundError,
    NumberGroup,
    Purchase,
    Region,
    Reservation,
    TwoChatSession,
    UnprocessableEntityError,
)
from twochat_async.testing import FakeTwoChat, Reply

T0 = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)

Call = Callable[[TwoChatSession], Awaitable[Any]]

LOS_ANGELES = NumberGroup(
    id="abc-123",
    prefix="+1 (213)",
    location="Los Angeles",
    setup_price=Decimal("0.00"),
    monthly_price=Decimal("3.50"),
    type="local",
    requirements=(),
    allow_number_selection=True,
    is_eligible_for_free_number=False,
    features=frozenset({"voice", "sms_in", "sms_out", "whatsapp_business"}),
)

ABC_NUMBERS = ["+12135551234", *(f"+1213555{n:04d}" for n in range(1235, 1245))]


class Clock:
    """A clock the test moves by hand, for the fake's reservation expiry."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward by ``timedelta(**delta)``."""
        self.now += timedelta(**delta)


@pytest.fixture
def clock(fake: FakeTwoChat) -> Clock:
    """A mutable clock injected into the running fake."""
    hand = Clock()
    fake.clock = hand
    return hand


def ok(data: Any, **extra: Any) -> Reply:
    """Return a 200 reply carrying ``data`` in 2Chat's success envelope."""
    return Reply(status=200, json={"success": True, "data": data, **extra})


def wire_reservation(**changes: Any) -> dict[str, Any]:
    """Return a reservation object as 2Chat sends it, with ``changes`` applied."""
    return {
        "uuid": "reservation-uuid-here",
        "number": "+12135551234",
        "created_at": "2024-01-15T10:30:00Z",
        "expires_at": "2024-01-15T11:30:00Z",
        **changes,
    }


DOC_RESERVATION = Reservation(
    uuid="reservation-uuid-here",
    number="+12135551234",
    created_at=T0,
    expires_at=T0 + timedelta(hours=1),
)


def wire_group(**changes: Any) -> dict[str, Any]:
    """Return the documented Los Angeles group as 2Chat sends it, with ``changes``."""
    return {
        "id": "abc-123",
        "prefix": "+1 (213)",
        "location": "Los Angeles",
        "price": {"setup_price": "0.00", "monthly_price": "3.50"},
        "type": "local",
        "requirements": [],
        "allow_number_selection": True,
        "is_eligible_for_free_number": False,
        "features": ["voice", "sms_in", "sms_out", "whatsapp_business"],
        **changes,
    }


def wire_info() -> dict[str, Any]:
    """Return the documented GET /open/info answer."""
    return {
        "success": True,
        "account": {
            "name": "Account Name (ACC91be)",
            "uuid": "ACC91be",
            "on_trial": False,
            "blocked": False,
            "created_at": "2022-04-21T21:55:37Z",
            "expires_at": "2024-08-31T19:11:08Z",
        },
        "limits": {"requests_per_minute": 80},
        "usage": {
            "api_request_count": 77112,
            "max_api_request_count": 500000,
            "number_check_count": 430542,
            "max_number_check_count": 500000,
        },
    }


# -- regions, cities, DID types ------------------------------------------------------------


async def test_regions_of_a_lower_case_country(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """regions('us') sends country=US and returns the fake's US regions as Region records."""
    regions = await chat.regions("us")
    assert [Region(123, "California", "US"), Region(124, "New York", "US")] == regions
    assert [request["query"] for request in fake.requests] == [{"country": "US"}]


async def test_regions_of_another_country(chat: TwoChatSession) -> None:
    """regions() returns only the asked country's regions, and none where there are none."""
    assert [Region(201, "Ontario", "CA")] == await chat.regions("CA")
    assert await chat.regions("DE") == []


async def test_cities_filtered_by_region(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """cities('US', region_id=123) returns only that region's cities."""
    cities = await chat.cities("US", region_id=123)
    assert [City(456, "Los Angeles", "US"), City(457, "San Francisco", "US")] == cities
    assert [r["query"] for r in fake.requests] == [{"country": "US", "region": "123"}]


async def test_cities_of_a_whole_country(chat: TwoChatSession) -> None:
    """cities() without region_id returns every city of the country."""
    cities = await chat.cities("us")
    assert [city.id for city in cities] == [456, 457, 458]
    assert all(isinstance(city, City) for city in cities)


async def test_did_types(chat: TwoChatSession) -> None:
    """did_types() returns every DID type of the fake as DidType records."""
    expected = [
        DidType(1, "local"),
        DidType(2, "mobile"),
        DidType(3, "tollfree"),
        DidType(4, "national"),
        DidType(5, "global"),
        DidType(6, "sharedcost"),
    ]
    assert expected == await chat.did_types()


# -- groups --------------------------------------------------------------------------------


async def test_groups_with_every_filter(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """groups() with all filters returns the matching group, fully decoded."""
    groups = await chat.groups(
        "US", did_type="local", region_id=123, city_id=456, city_name_or_prefix="Los"
    )
    assert groups == [LOS_ANGELES]
    expected_query = {
        "country": "US",
        "did_type": "local",
        "region_id": "123",
        "city_id": "456",
        "city_name_or_prefix": "Los",
    }
    assert [expected_query] == [request["query"] for request in fake.requests]


async def test_group_prices_are_exact_decimals(chat: TwoChatSession) -> None:
    """Prices decode to Decimal from the decimal strings, never through a float."""
    (group,) = await chat.groups("US", city_id=456)
    assert isinstance(group.monthly_price, Decimal)
    assert isinstance(group.setup_price, Decimal)
    assert Decimal("3.50") == group.monthly_price
    assert str(group.monthly_price) == "3.50"
    assert str(group.setup_price) == "0.00"


async def test_group_collections_are_immutable(chat: TwoChatSession) -> None:
    """features decodes to a frozenset and requirements to a tuple."""
    (group,) = await chat.groups("US", city_id=456)
    assert frozenset({"voice", "sms_in", "sms_out", "whatsapp_business"}) == group.features
    assert type(group.features) is frozenset
    assert type(group.requirements) is tuple


@pytest.mark.parametrize(
    ("filters", "expected_ids"),
    [
        ({}, ["abc-123", "nyc-212", "tf-800"]),
        ({"did_type": "tollfree"}, ["tf-800"]),
        ({"did_type": "all"}, ["abc-123", "nyc-212", "tf-800"]),
        ({"region_id": 124}, ["nyc-212"]),
        ({"city_id": 456}, ["abc-123"]),
        ({"city_name_or_prefix": "New York"}, ["nyc-212"]),
        ({"city_name_or_prefix": "+1 (800)"}, ["tf-800"]),
    ],
    ids=["none", "tollfree", "all", "region", "city", "city-name", "prefix"],
)
async def test_groups_each_filter_narrows(
    chat: TwoChatSession, filters: dict[str, Any], expected_ids: list[str]
) -> None:
    """Each groups() filter, alone, reaches the fake and narrows the result."""
    groups = await chat.groups("US", **filters)
    assert expected_ids == [group.id for group in groups]


async def test_groups_of_a_country_with_requirements(chat: TwoChatSession) -> None:
    """groups('DE') returns the Berlin group with its requirements as a tuple of mappings."""
    (group,) = await chat.groups("DE")
    assert group.id == "ber-30"
    assert group.requirements == ({"type": "address"}, {"type": "identity"})
    assert Decimal("6.99") == group.monthly_price
    assert Decimal("2.50") == group.setup_price


# -- available numbers ---------------------------------------------------------------------


async def test_available_numbers_containing_digits(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """available_numbers(group, number_contains='555') returns the group's matching numbers."""
    numbers = await chat.available_numbers("abc-123", number_contains="555")
    assert AvailableNumber("did-12135551234", "+12135551234") == numbers[0]
    assert [n.number for n in numbers] == ABC_NUMBERS
    assert fake.requests[0]["query"] == {"group_id": "abc-123", "number_contains": "555"}


async def test_available_numbers_filter_narrows(chat: TwoChatSession) -> None:
    """number_contains narrows the list to the numbers holding those digits."""
    numbers = await chat.available_numbers("abc-123", number_contains="1240")
    assert [AvailableNumber("did-12135551240", "+12135551240")] == numbers


async def test_reserved_number_leaves_and_returns_to_available(chat: TwoChatSession) -> None:
    """A reserved number is not available until its reservation is cancelled."""
    reservation = await chat.reserve("abc-123", "+12135551234")
    held = [n.number for n in await chat.available_numbers("abc-123")]
    assert "+12135551234" not in held
    assert len(ABC_NUMBERS) - 1 == len(held)
    await chat.cancel_reservation(reservation)
    assert [n.number for n in await chat.available_numbers("abc-123")] == ABC_NUMBERS


async def test_available_numbers_of_a_group_without_selection_is_406(
    chat: TwoChatSession,
) -> None:
    """A group that does not allow number selection answers 406, a plain APIError."""
    with pytest.raises(APIError) as info:
        await chat.available_numbers("tf-800")
    assert type(info.value) is APIError
    assert info.value.status == 406
    assert info.value.message == "Number group tf-800 does not allow number selection"


async def test_available_numbers_of_an_unknown_group_is_not_found(chat: TwoChatSession) -> None:
    """An unknown group raises NotFoundError."""
    with pytest.raises(NotFoundError) as info:
        await chat.available_numbers("no-such-group")
    assert info.value.status == 404


# -- requirements --------------------------------------------------------------------------


async def test_requirements_of_a_country(chat: TwoChatSession) -> None:
    """requirements('DE') returns every German requirement as a free-form mapping."""
    requirements = await chat.requirements("de")
    assert [r["id"] for r in requirements] == ["req-de-address", "req-de-identity", "req-de-mobile"]
    assert requirements[0]["fields"] == ["street", "city", "postal_code"]


async def test_requirements_filtered_by_did_type_id(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """requirements(did_type=<id>) sends the id and gets only that type's items."""
    requirements = await chat.requirements("DE", did_type=1)
    assert [r["id"] for r in requirements] == ["req-de-address", "req-de-identity"]
    assert fake.requests[0]["query"] == {"country": "DE", "did_type": "1"}


async def test_requirements_of_a_country_without_any(chat: TwoChatSession) -> None:
    """A country with no requirements gives an empty list."""
    assert await chat.requirements("US") == []


# -- reservations and cancelling -----------------------------------------------------------


async def test_reservations_lists_only_active_ones(
    fake: FakeTwoChat, chat: TwoChatSession, clock: Clock
) -> None:
    """reservations() leaves out a reservation whose expiry the fake's clock has passed."""
    first = await chat.reserve("abc-123", "+12135551234")
    clock.advance(minutes=30)
    second = await chat.reserve("abc-123", "+12135551235")
    assert [first.uuid, second.uuid] == [r.uuid for r in await chat.reservations()]
    clock.advance(minutes=31)
    listed = await chat.reservations()
    expected = Reservation(
        uuid=second.uuid,
        number="+12135551235",
        created_at=T0 + timedelta(minutes=30),
        expires_at=T0 + timedelta(minutes=90),
    )
    assert [expected] == listed


async def test_reservations_is_empty_without_any(chat: TwoChatSession) -> None:
    """reservations() on an account without reservations gives an empty list."""
    assert await chat.reservations() == []


async def test_cancel_accepts_a_reservation_or_its_uuid(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """cancel_reservation() takes a Reservation or a uuid string; both release the number."""
    first = await chat.reserve("abc-123", "+12135551234")
    second = await chat.reserve("abc-123", "+12135551235")
    await chat.cancel_reservation(first)
    assert [second.uuid] == [r.uuid for r in await chat.reservations()]
    await chat.cancel_reservation(second.uuid)
    assert await chat.reservations() == []
    assert fake.reservations == {}
    assert fake.available("abc-123") == ABC_NUMBERS


async def test_cancel_an_unknown_uuid_is_not_found(chat: TwoChatSession) -> None:
    """Cancelling a uuid the fake does not know raises NotFoundError."""
    with pytest.raises(NotFoundError) as info:
        await chat.cancel_reservation("no-such-reservation")
    assert info.value.status == 404
    assert info.value.message == "Reservation no-such-reservation not found"


async def test_cancel_an_expired_reservation_is_not_found(
    chat: TwoChatSession, clock: Clock
) -> None:
    """A reservation past its expiry can no longer be cancelled."""
    reservation = await chat.reserve("abc-123")
    clock.advance(hours=1)
    with pytest.raises(NotFoundError):
        await chat.cancel_reservation(reservation)


# -- purchase ------------------------------------------------------------------------------


async def test_purchase_a_specific_number(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """purchase(group, number) returns a Purchase whose details are the answer but success."""
    purchase = await chat.purchase("abc-123", "+12135551234")
    expected = Purchase(
        group_id="abc-123",
        number="+12135551234",
        details={
            "message": "Number +12135551234 purchased successfully",
            "data": {"number": "+12135551234", "group_id": "abc-123"},
        },
    )
    assert expected == purchase
    assert "success" not in purchase.details
    assert fake.sold == {"+12135551234": "abc-123"}


async def test_purchase_a_random_number(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """purchase(group) leaves number None and keeps the number the fake picked in details."""
    purchase = await chat.purchase("nyc-212")
    assert purchase.number is None
    assert purchase.group_id == "nyc-212"
    assert purchase.details["data"] == {"number": "+12125552000", "group_id": "nyc-212"}
    assert fake.sold == {"+12125552000": "nyc-212"}


async def test_purchased_number_is_gone_for_good(chat: TwoChatSession) -> None:
    """A bought number is no longer available, nor reservable, nor purchasable again."""
    await chat.purchase("abc-123", "+12135551234")
    available = [n.number for n in await chat.available_numbers("abc-123")]
    assert "+12135551234" not in available
    with pytest.raises(UnprocessableEntityError) as info:
        await chat.reserve("abc-123", "+12135551234")
    assert info.value.message == "Number +12135551234 is not available"
    with pytest.raises(UnprocessableEntityError):
        await chat.purchase("abc-123", "+12135551234")


async def test_purchase_a_number_i_reserved(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Buying a number this account reserved works and ends the reservation."""
    other = await chat.reserve("abc-123", "+12135551235")
    await chat.reserve("abc-123", "+12135551234")
    purchase = await chat.purchase("abc-123", "+12135551234")
    assert purchase.number == "+12135551234"
    assert [other.uuid] == [r.uuid for r in await chat.reservations()]
    assert fake.sold == {"+12135551234": "abc-123"}


async def test_purchase_from_an_unknown_group_is_not_found(chat: TwoChatSession) -> None:
    """Buying from a group the fake does not know raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await chat.purchase("no-such-group", "+12135551234")


# -- info ----------------------------------------------------------------------------------


async def test_info_counts_the_requests(
    fake: FakeTwoChat, chat: TwoChatSession, clock: Clock
) -> None:
    """info() returns the account with 80 requests/minute and the fake's request count."""
    await chat.regions("US")
    await chat.did_types()
    info = await chat.info()
    expected = AccountInfo(
        name="Fake Account (ACCfake)",
        uuid="ACCfake",
        on_trial=False,
        blocked=False,
        created_at=datetime(2022, 4, 21, 21, 55, 37, tzinfo=timezone.utc),
        expires_at=T0 + timedelta(days=365),
        requests_per_minute=80,
        api_request_count=3,
        max_api_request_count=500000,
        number_check_count=0,
        max_number_check_count=500000,
    )
    assert expected == info
    assert len(fake.requests) == info.api_request_count


async def test_info_decodes_the_documented_answer(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """info() decodes 2Chat's documented example, unknown fields at every level ignored."""
    body = wire_info()
    body["account"]["plan"] = "pro"
    body["limits"]["burst"] = 5
    body["usage"]["other_count"] = 1
    body["extra"] = {"x": 1}
    fake.script(Reply(status=200, json=body))
    info = await chat.info()
    assert info.name == "Account Name (ACC91be)"
    assert info.requests_per_minute == 80
    assert info.api_request_count == 77112
    assert info.number_check_count == 430542
    assert datetime(2024, 8, 31, 19, 11, 8, tzinfo=timezone.utc) == info.expires_at


# -- validation before any I/O -------------------------------------------------------------

COUNTRY_METHODS: dict[str, Callable[[TwoChatSession, Any], Awaitable[Any]]] = {
    "regions": lambda chat, country: chat.regions(country),
    "cities": lambda chat, country: chat.cities(country),
    "groups": lambda chat, country: chat.groups(country),
    "requirements": lambda chat, country: chat.requirements(country),
}


@pytest.mark.parametrize("method", sorted(COUNTRY_METHODS))
@pytest.mark.parametrize("country", ["USA", "U1", "", "ÜS", 1], ids=repr)
async def test_bad_country_is_refused_before_io(
    fake: FakeTwoChat, chat: TwoChatSession, method: str, country: Any
) -> None:
    """A country that is not two ASCII letters raises ValueError and sends nothing."""
    with pytest.raises(ValueError, match="country"):
        await COUNTRY_METHODS[method](chat, country)
    assert fake.requests == []


@pytest.mark.parametrize("method", sorted(COUNTRY_METHODS))
async def test_country_is_sent_in_upper_case(
    fake: FakeTwoChat, chat: TwoChatSession, method: str
) -> None:
    """Every method taking a country sends it normalised to upper case."""
    await COUNTRY_METHODS[method](chat, "de")
    assert fake.requests[0]["query"]["country"] == "DE"


BAD_CALLS: dict[str, tuple[Call, str]] = {
    "groups-did-type-unknown": (lambda c: c.groups("US", did_type="premium"), "did_type"),
    "groups-did-type-hyphen": (lambda c: c.groups("US", did_type="toll-free"), "did_type"),
    "groups-did-type-empty": (lambda c: c.groups("US", did_type=""), "did_type"),
    "groups-did-type-int": (lambda c: c.groups("US", did_type=1), "did_type"),
    "groups-region-bool": (lambda c: c.groups("US", region_id=True), "region_id"),
    "groups-region-str": (lambda c: c.groups("US", region_id="123"), "region_id"),
    "groups-region-negative": (lambda c: c.groups("US", region_id=-1), "region_id"),
    "groups-city-bool": (lambda c: c.groups("US", city_id=False), "city_id"),
    "groups-city-str": (lambda c: c.groups("US", city_id="456"), "city_id"),
    "groups-city-negative": (lambda c: c.groups("US", city_id=-456), "city_id"),
    "cities-region-bool": (lambda c: c.cities("US", region_id=True), "region_id"),
    "cities-region-str": (lambda c: c.cities("US", region_id="123"), "region_id"),
    "cities-region-negative": (lambda c: c.cities("US", region_id=-1), "region_id"),
    "available-empty-group": (lambda c: c.available_numbers(""), "group_id"),
    "available-blank-group": (lambda c: c.available_numbers("   "), "group_id"),
    "available-contains-letters": (
        lambda c: c.available_numbers("abc-123", number_contains="55a"),
        "number_contains",
    ),
    "available-contains-plus": (
        lambda c: c.available_numbers("abc-123", number_contains="+555"),
        "number_contains",
    ),
    "available-contains-empty": (
        lambda c: c.available_numbers("abc-123", number_contains=""),
        "number_contains",
    ),
    "available-contains-non-ascii-digits": (
        lambda c: c.available_numbers("abc-123", number_contains="\uff15\uff15\uff15"),
        "number_contains",
    ),
    "purchase-empty-group": (lambda c: c.purchase("", "+12135551234"), "group_id"),
    "purchase-no-plus": (lambda c: c.purchase("abc-123", "12135551234"), "number"),
    "purchase-leading-zero": (lambda c: c.purchase("abc-123", "+0123"), "number"),
    "purchase-spaces": (lambda c: c.purchase("abc-123", "+1 213 555 1234"), "number"),
    "purchase-empty-number": (lambda c: c.purchase("abc-123", ""), "number"),
    "cancel-empty-uuid": (lambda c: c.cancel_reservation(""), "uuid"),
    "cancel-blank-uuid": (lambda c: c.cancel_reservation("  "), "uuid"),
    "cancel-dot": (lambda c: c.cancel_reservation("."), "uuid"),
    "cancel-dot-dot": (lambda c: c.cancel_reservation(".."), "uuid"),
    "cancel-slash": (lambda c: c.cancel_reservation("../purchase"), "uuid"),
    "cancel-backslash": (lambda c: c.cancel_reservation("a\\b"), "uuid"),
    "cancel-space": (lambda c: c.cancel_reservation("a b"), "uuid"),
    "cancel-newline": (lambda c: c.cancel_reservation("abc\n"), "uuid"),
    "cancel-nul": (lambda c: c.cancel_reservation("a\x00b"), "uuid"),
    "cancel-surrogate": (lambda c: c.cancel_reservation("a\ud800b"), "uuid"),
    "reserve-group-surrogate": (lambda c: c.reserve("abc-123\ud800"), "group_id"),
    "purchase-group-surrogate": (lambda c: c.purchase("abc-123\udc80"), "group_id"),
    "available-group-surrogate": (lambda c: c.available_numbers("abc-123\ud800"), "group_id"),
    "groups-city-name-surrogate": (
        lambda c: c.groups("US", city_name_or_prefix="Los\udc80Angeles"),
        "city_name_or_prefix",
    ),
    "requirements-did-type-str": (lambda c: c.requirements("US", did_type="1"), "did_type"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_bad_argument_is_refused_before_io(
    fake: FakeTwoChat, chat: TwoChatSession, case: str
) -> None:
    """An invalid argument raises ValueError naming it, and no request reaches the fake."""
    call, name = BAD_CALLS[case]
    with pytest.raises(ValueError, match=name):
        await call(chat)
    assert fake.requests == []


# -- open shapes of List Reservations ------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        [wire_reservation()],
        {"reservations": [wire_reservation()]},
        {"reservation_details": wire_reservation()},
        {"reservation_details": [wire_reservation()]},
    ],
    ids=["list", "reservations", "details-object", "details-list"],
)
async def test_reservations_open_shapes(fake: FakeTwoChat, chat: TwoChatSession, data: Any) -> None:
    """Every documented shape of List Reservations decodes to the same list."""
    fake.script(ok(data))
    assert await chat.reservations() == [DOC_RESERVATION]


@pytest.mark.parametrize(
    "data",
    [[], {}, None, {"reservations": []}, {"reservation_details": []}],
    ids=["list", "object", "null", "reservations", "details"],
)
async def test_reservations_empty_shapes(
    fake: FakeTwoChat, chat: TwoChatSession, data: Any
) -> None:
    """Every empty shape of List Reservations decodes to an empty list."""
    fake.script(ok(data))
    assert await chat.reservations() == []


async def test_reservations_with_several_items(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """A list of several reservations keeps them all, in order."""
    second = wire_reservation(uuid="second", number="+12135551235")
    fake.script(ok({"reservations": [wire_reservation(), second]}))
    assert [r.uuid for r in await chat.reservations()] == ["reservation-uuid-here", "second"]


async def test_reservations_timestamp_variants(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Fractional seconds and +00:00 offsets in reservations decode to aware UTC datetimes."""
    item = wire_reservation(
        created_at="2024-01-15T10:30:00.123456+00:00", expires_at="2024-01-15T11:30:00.5Z"
    )
    fake.script(ok([item]))
    (reservation,) = await chat.reservations()
    assert datetime(2024, 1, 15, 10, 30, 0, 123456, timezone.utc) == reservation.created_at
    assert datetime(2024, 1, 15, 11, 30, 0, 500000, timezone.utc) == reservation.expires_at
    assert timezone.utc == reservation.created_at.tzinfo
    assert timezone.utc == reservation.expires_at.tzinfo


# -- unknown fields are ignored ------------------------------------------------------------


async def test_unknown_fields_in_groups_are_ignored(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Extra fields in the envelope, data, group and price do not change the decoded group."""
    group = wire_group(
        price={"setup_price": "0.00", "monthly_price": "3.50", "currency": "USD"},
        rating=5,
        tags=["new"],
    )
    fake.script(ok({"groups": [group], "page": 1}, message="ok"))
    assert await chat.groups("US") == [LOS_ANGELES]


async def test_unknown_fields_in_reservations_are_ignored(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Extra fields beside and inside reservations do not change them."""
    item = wire_reservation(status="active", price={"monthly": "3.50"})
    fake.script(ok({"reservations": [item], "total": 1}, message="ok"))
    assert await chat.reservations() == [DOC_RESERVATION]


async def test_unknown_fields_in_regions_and_cities_are_ignored(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Extra fields in region and city objects are ignored."""
    fake.script(
        ok({"regions": [{"id": 1, "region_name": "R", "iso_country_code": "US", "x": 1}]}),
        ok({"cities": [{"id": 2, "city_name": "C", "iso_country_code": "US", "y": [2]}]}),
    )
    assert [Region(1, "R", "US")] == await chat.regions("US")
    assert [City(2, "C", "US")] == await chat.cities("US")


# -- missing required fields ---------------------------------------------------------------


def _without(mapping: dict[str, Any], *path: str) -> dict[str, Any]:
    """Return ``mapping`` with the key at ``path`` removed (nested objects are copied)."""
    copy = dict(mapping)
    if len(path) == 1:
        del copy[path[0]]
    else:
        copy[path[0]] = _without(copy[path[0]], *path[1:])
    return copy


MISSING_FIELD: dict[str, tuple[Call, Reply, str]] = {
    "group-id": (
        lambda c: c.groups("US"),
        ok({"groups": [_without(wire_group(), "id")]}),
        "$.data.groups[0]",
    ),
    "region-name": (
        lambda c: c.regions("US"),
        ok({"regions": [{"id": 123, "iso_country_code": "US"}]}),
        "$.data.regions[0]",
    ),
    "city-country": (
        lambda c: c.cities("US"),
        ok({"cities": [{"id": 456, "city_name": "Los Angeles"}]}),
        "$.data.cities[0]",
    ),
    "did-type-name": (
        lambda c: c.did_types(),
        ok({"did_types": [{"id": 1}]}),
        "$.data.did_types[0]",
    ),
    "available-number": (
        lambda c: c.available_numbers("abc-123"),
        ok({"numbers": [{"id": "did-xyz"}]}),
        "$.data.numbers[0]",
    ),
    "reservation-expires-at": (
        lambda c: c.reservations(),
        ok([_without(wire_reservation(), "expires_at")]),
        "$.data[0]",
    ),
    "groups-key": (lambda c: c.groups("US"), ok({}), "$.data.groups"),
    "info-limits": (
        lambda c: c.info(),
        Reply(status=200, json=_without(wire_info(), "limits")),
        "$.limits",
    ),
}


@pytest.mark.parametrize("case", list(MISSING_FIELD))
async def test_missing_required_field_is_an_invalid_response(
    fake: FakeTwoChat, chat: TwoChatSession, case: str
) -> None:
    """A success answer lacking a required field raises InvalidResponseError with its $. path."""
    call, reply, path = MISSING_FIELD[case]
    fake.script(reply)
    with pytest.raises(InvalidResponseError) as info:
        await call(chat)
    assert info.value.status == 200
    assert path in str(info.value)


WIRE_PATHS: dict[str, tuple[Call, Reply, str]] = {
    "region-name": (
        lambda c: c.regions("US"),
        ok({"regions": [{"id": 123, "iso_country_code": "US"}]}),
        "$.data.regions[0].region_name",
    ),
    "city-name": (
        lambda c: c.cities("US"),
        ok({"cities": [{"id": 456, "iso_country_code": "US"}]}),
        "$.data.cities[0].city_name",
    ),
    "group-monthly-price": (
        lambda c: c.groups("US"),
        ok({"groups": [_without(wire_group(), "price", "monthly_price")]}),
        "$.data.groups[0].price.monthly_price",
    ),
    "info-requests-per-minute": (
        lambda c: c.info(),
        Reply(status=200, json=_without(wire_info(), "limits", "requests_per_minute")),
        "$.limits.requests_per_minute",
    ),
    "info-account-uuid": (
        lambda c: c.info(),
        Reply(status=200, json=_without(wire_info(), "account", "uuid")),
        "$.account.uuid",
    ),
}


@pytest.mark.parametrize("case", list(WIRE_PATHS))
async def test_missing_field_path_names_the_wire_location(
    fake: FakeTwoChat, chat: TwoChatSession, case: str
) -> None:
    """The error's path is where the field belongs in 2Chat's JSON, under its wire name."""
    call, reply, path = WIRE_PATHS[case]
    fake.script(reply)
    with pytest.raises(InvalidResponseError) as info:
        await call(chat)
    assert path in str(info.value)


async def test_query_values_round_trip_over_the_wire(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A city name with spaces, '&' and non-ASCII letters reaches the server unchanged."""
    assert await chat.groups("BR", city_name_or_prefix="São Paulo & Co") == []
    assert fake.requests[0]["query"] == {"country": "BR", "city_name_or_prefix": "São Paulo & Co"}
