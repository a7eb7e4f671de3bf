"""Typed dataclass configs on the command line: every field becomes ``--field-name VALUE``.

Nested dataclass fields are flattened (their fields appear without a prefix), so a recipe config
can hold an :class:`~speechtl.adapt.run.AdaptConfig` and still be overridden field by field.
The comment after a field (``x: int = 3  # what it does``) becomes its ``--help`` text.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from typing import Any, TypeVar

from speechtl.errors import SpeechtlError

__all__ = ["ConfigError", "add_dataclass_arguments", "dataclass_from_args", "parse_config", "config_to_dict"]

T = TypeVar("T")


class ConfigError(SpeechtlError, ValueError):
    """A run was configured in a way that cannot work; the message says what to give instead."""


def _field_help(cls) -> dict[str, str]:
    """Trailing ``# comments`` of the fields in the class source, as help strings."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return dict(re.findall(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", src, flags=re.M))


def _fields(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, hints[f.name]


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, defaults: Any = None) -> None:
    helps = _field_help(cls)
    defaults = defaults if defaults is not None else cls()
    for f, tp in _fields(cls):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(tp):
            add_dataclass_arguments(parser, tp, value)
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = helps.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is bool:
            parser.add_argument(flag, dest=f.name, default=value, action=argparse.BooleanOptionalAction,
                                help=help_text)
        elif origin is list:
            parser.add_argument(flag, dest=f.name, default=value, nargs="*", type=args[0],
                                help=f"{help_text} (default: {' '.join(map(str, value)) or 'none'})")
        else:
            if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None
                tp = next(a for a in args if a is not type(None))
            parser.add_argument(flag, dest=f.name, default=value, type=tp,
                                help=f"{help_text} (default: {value})")


def dataclass_from_args(cls: type[T], ns: argparse.Namespace) -> T:
    kwargs = {}
    for f, tp in _fields(cls):
        kwargs[f.name] = dataclass_from_args(tp, ns) if dataclasses.is_dataclass(tp) else getattr(ns, f.name)
    return cls(**kwargs)


def parse_config(cls: type[T], argv: list[str] | None = None, description: str | None = None,
                 defaults: T | None = None) -> T:
    parser = argparse.ArgumentParser(description=description or (cls.__doc__ or "").strip())
    add_dataclass_arguments(parser, cls, defaults)
    return dataclass_from_args(cls, parser.parse_args(argv))


def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
