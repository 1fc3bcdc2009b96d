"""Griffe extensions that make the API reference show attrs classes as users see them.

- ``AttributesSection``: the records and errors document their fields in the class
  docstring's ``Attributes:`` section (Google style), while Griffe reads an attribute's
  own docstring only from a string right after it. This copies each description from the
  section onto the attribute that has no docstring of its own, so the API reference shows
  every field with its meaning, once (``show_docstring_attributes: false`` drops the
  duplicate table). An attribute set from an ``__init__`` argument of the same name
  (``self.status = status``) is shown with that argument's type.
- ``AttrsInit``: attrs writes a class's ``__init__`` at run time, so Griffe, which reads
  the source, finds none and the reference would show ``RateLimit`` or ``Reservation``
  without the arguments that build them. This writes the ``__init__`` attrs would write
  (fields in order, defaults, ``factory=``, ``kw_only``, ``init=False``, ``alias=`` and
  the leading underscore attrs drops), which ``merge_init_into_class`` then shows as the
  class's signature.
"""

from __future__ import annotations

from typing import Any

import griffe

#: The class decorators of attrs that write an ``__init__``, by canonical path.
ATTRS_DECORATORS = {
    f"{module}.{name}"
    for module in ("attrs", "attr")
    for name in ("define", "frozen", "mutable", "s", "attrs", "dataclass")
}
#: The field helpers whose keyword arguments shape an ``__init__`` parameter.
ATTRS_FIELDS = {"attrs.field", "attr.field", "attr.ib", "attr.attrib"}


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
        _type_from_init(cls)


def _type_from_init(cls: griffe.Class) -> None:
    """Show ``self.status = status`` as ``status: int``, the type of its ``__init__`` argument.

    Else the reference renders the attribute as ``status = status``.
    """
    init = cls.members.get("__init__")
    if not isinstance(init, griffe.Function):
        return
    arguments = {parameter.name: parameter for parameter in init.parameters}
    for member in cls.members.values():
        if member.is_alias or not isinstance(member, griffe.Attribute) or member.annotation:
            continue
        argument = arguments.get(str(member.value))
        if argument is not None and argument.annotation is not None:
            member.annotation = argument.annotation
            member.value = None


def _call_arguments(expr: object) -> dict[str, Any] | None:
    """The keyword arguments of a call expression (``None`` when it is not a call)."""
    if not isinstance(expr, griffe.ExprCall):
        return None
    return {
        argument.name: argument.value
        for argument in expr.arguments
        if isinstance(argument, griffe.ExprKeyword)
    }


def _attrs_decorator(cls: griffe.Class) -> dict[str, Any] | None:
    """The keyword arguments of the class's attrs decorator; ``None`` if it has none."""
    for decorator in cls.decorators:
        value = decorator.value
        called = isinstance(value, griffe.ExprCall)
        target = value.function if isinstance(value, griffe.ExprCall) else value
        if isinstance(target, griffe.Expr) and target.canonical_path in ATTRS_DECORATORS:
            return (_call_arguments(value) or {}) if called else {}
    return None


def _parameter(field: griffe.Attribute, kw_only: bool) -> griffe.Parameter | None:
    """The ``__init__`` parameter attrs makes of one field, or ``None`` for ``init=False``."""
    value = field.value
    default: str | griffe.Expr | None = value
    name = field.name.lstrip("_")
    if isinstance(value, griffe.ExprCall) and value.function.canonical_path in ATTRS_FIELDS:
        options = _call_arguments(value) or {}
        if str(options.get("init")) == "False":
            return None
        kw_only = kw_only or str(options.get("kw_only")) == "True"
        name = str(options["alias"]).strip("'\"") if "alias" in options else name
        if "factory" in options:
            default = griffe.ExprCall(function=options["factory"], arguments=[])
        else:
            default = options.get("default")
    return griffe.Parameter(
        name,
        annotation=field.annotation,
        kind=griffe.ParameterKind.keyword_only
        if kw_only
        else griffe.ParameterKind.positional_or_keyword,
        default=default,
        docstring=field.docstring,
    )


class AttrsInit(griffe.Extension):
    """Give each attrs class the ``__init__`` attrs writes for it at run time."""

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        """Add ``__init__`` to an attrs class that defines none itself."""
        options = _attrs_decorator(cls)
        if options is None or "__init__" in cls.members or str(options.get("init")) == "False":
            return
        kw_only = str(options.get("kw_only")) == "True"
        parameters = []
        for member in cls.members.values():
            if (
                member.is_alias
                or not isinstance(member, griffe.Attribute)
                or member.annotation is None
                or "instance-attribute" not in member.labels
            ):
                continue
            # attrs removes the class attributes it turns into fields: a default lives in
            # __init__ only, so "class-attribute" would mislead.
            member.labels.discard("class-attribute")
            parameter = _parameter(member, kw_only)
            if parameter is not None:
                parameters.append(parameter)
        self_ = griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)
        # attrs puts keyword-only parameters last, whatever their place among the fields.
        parameters.sort(key=lambda p: p.kind is griffe.ParameterKind.keyword_only)
        init = griffe.Function(
            "__init__",
            lineno=cls.lineno,
            endlineno=cls.lineno,
            parent=cls,
            parameters=griffe.Parameters(self_, *parameters),
            returns="None",
        )
        cls.set_member("__init__", init)
