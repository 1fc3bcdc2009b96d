"""Griffe extension: give each attribute the description its class docstring gives it.

The records and errors document their fields in the class docstring's ``Attributes:``
section (Google style), while Griffe reads an attribute's own docstring only from a string
right after it. This copies each description from the section onto the attribute that
has no docstring of its own, so the API reference shows every field with its meaning, once
(``show_docstring_attributes: false`` drops the duplicate table).
"""

from __future__ import annotations

from typing import Any

import griffe


class AttributesSection(griffe.Extension):
    """Copy ``Attributes:`` descriptions of a class docstring onto its attributes."""

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        """Fill the docstring of each undocumented attribute named in the section."""
        if cls.docstring is None:
            return
        for section in cls.docstring.parse("google", warnings=False):
            if section.kind is not griffe.DocstringSectionKind.attributes:
                continue
            for item in section.value:
                member = cls.members.get(item.name)
                if member is None or member.is_alias or not member.is_attribute:
                    continue
                if member.docstring is None and item.description:
                    member.docstring = griffe.Docstring(
                        item.description, parent=member, parser="google"
                    )
