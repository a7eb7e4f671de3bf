"""Typed dataclass configs on the command line: every field becomes ``--field-name VALUE``.

Nested dataclass fields are flattened (their fields appear without a prefix), so a recipe config
can hold an :class:`~speechtl.adapt.config.AdaptConfig` and still be overridden field by field.
The comment after a field (``x: int = 3  # what it does``) becomes its ``--help`` text.
Configs are frozen: :func:`override` derives one from another by flag name (``override(cfg, lr=1e-3)``
finds ``lr`` in whichever nested group holds it), so a recipe's config reads as its diff from the defaults.
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

__all__ = ["ConfigError", "add_dataclass_arguments", "add_debug_flag", "dataclass_from_args", "parse_config",
           "config_to_dict", "override", "flat_dict"]

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
        if tp is bool or (origin in (typing.Union, types.UnionType) and set(args) == {bool, type(None)}):
            # bool | None: a switch whose unset default (None) the function decides, e.g. by another setting
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


def _leaf_owners(cfg) -> dict[str, tuple[str, ...]]:
    """Flag name (leaf field) -> the path of nested field names that holds it."""
    owners: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            owners.update({leaf: (f.name, *path) for leaf, path in _leaf_owners(value).items()})
        else:
            owners[f.name] = ()
    return owners


def override(cfg: T, **changes) -> T:
    """A copy of the (frozen, possibly nested) config ``cfg`` with fields changed by their flag names."""
    owners = _leaf_owners(cfg)
    unknown = sorted(set(changes) - set(owners))
    if unknown:
        raise ConfigError(f"{type(cfg).__name__} has no setting {', '.join(unknown)}")
    nested: dict[str, dict] = {}
    direct = {}
    for name, value in changes.items():
        if owners[name]:
            nested.setdefault(owners[name][0], {})[name] = value
        else:
            direct[name] = value
    for group, sub in nested.items():
        direct[group] = override(getattr(cfg, group), **sub)
    return dataclasses.replace(cfg, **direct)


def flat_dict(cfg) -> dict:
    """Every leaf field by its flag name, nested groups flattened (the shape of the command line)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flat_dict(value))
        else:
            out[f.name] = list(value) if isinstance(value, list) else value
    return out


def add_debug_flag(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """``--debug`` in ``parser`` and every subparser under it: before the verb (``speechtl --debug adapt ...``) or
    after it (``speechtl adapt ... --debug``); the CLI then prints an error's traceback
    (:func:`speechtl.errors.exit_status`)."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="print the full traceback of an error (for bug reports)")
    for action in parser._actions:  # argparse keeps its subparsers there; no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share one parser
                add_debug_flag(sub, top=False)
