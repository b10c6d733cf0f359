"""Config fields that carry their own help text.

A step's config dataclass is the one place a setting is declared: its type, default and help live
on the field (`setting(...)`), and the command line (components/cli.py), the params.yaml sections
and the kfp pipeline's parameters (components/settings.py) are all generated from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, fields, replace
from typing import Any, Self

MISSING = dataclasses.MISSING


def setting(default: Any = MISSING, *, help: str, factory: Any = MISSING, option: bool = True) -> Any:
    """A dataclass field with its help text; `factory` for mutable defaults; option=False: filled in by the
    program (never a command-line option or a pipeline parameter)."""
    metadata = {"help": help, "option": option}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def help_of(field: dataclasses.Field) -> str:
    return field.metadata.get("help", "")


def is_option(field: dataclasses.Field) -> bool:
    return field.metadata.get("option", True)


def default_of(field: dataclasses.Field) -> Any:
    """The field's default value (MISSING for a required field)."""
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return MISSING


class DictConfig:
    """to_dict / from_dict / replace of a frozen config dataclass: tuple fields travel as JSON lists, and an
    unknown name is refused with the known ones."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        known = {f.name: f for f in fields(cls)}
        if unknown := sorted(set(values) - set(known)):
            raise ValueError(f"{cls.__name__}: unknown options {unknown}; known options are {sorted(known)}")
        return cls(**json_values(cls, values))

    def replace(self, **changes: Any) -> Self:
        known = {f.name for f in fields(self)}
        if unknown := sorted(set(changes) - known):
            raise ValueError(f"{type(self).__name__}: unknown options {unknown}; known options are {sorted(known)}")
        return replace(self, **json_values(type(self), changes))


def json_values(config_class, values: dict[str, Any]) -> dict[str, Any]:
    """`values` as a dataclass's fields take them: JSON lists become tuples; an integral number
    for an int field (or a tuple of ints) becomes that int (kfp carries dict parameters through
    JSON, which turns 8 into 8.0); a number written as text for a float field becomes that float
    (YAML 1.1, PyYAML's, reads 2e-3 as the string '2e-3': only 2.0e-3 is a number to it), and
    other text there is refused, naming the field."""
    types = {f.name: str(f.type) for f in fields(config_class)}

    def scalar(name: str, value: Any) -> Any:
        kind = types.get(name, "")
        if kind.startswith(("int", "tuple[int")) and _integral(value):
            return int(value)
        if kind.startswith(("float", "tuple[float")) and isinstance(value, str):
            return _number(name, value)
        return value

    def convert(name: str, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(scalar(name, v) for v in value)
        return scalar(name, value)

    return {name: convert(name, value) for name, value in values.items()}


def _integral(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer()


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
