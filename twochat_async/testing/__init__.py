"""Test helpers: ``FakeTwoChat``, an in-process 2Chat to run code and tests against."""

from ._catalogue import FakeGroup, default_catalogue
from ._fake import FakeReservation, FakeTwoChat, Reply

__all__ = ["FakeGroup", "FakeReservation", "FakeTwoChat", "Reply", "default_catalogue"]
