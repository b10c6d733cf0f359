"""Command lines from config dataclasses: one option per field, validated into the one config object.

Options default to the dataclass defaults, overridden by a params.yaml section when `--params` is
given, overridden by the command line. Lists, tuples and dicts are given as YAML
(`--sources '[coco, ln_coco]'`).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import yaml

MISSING = dataclasses.MISSING


def _yaml_value(text: str):
    return yaml.safe_load(text)


def _argument_type(annotation) -> typing.Callable[[str], object]:
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    plain = name.replace(" ", "").removesuffix("|None")  # None: "not set", the option's absence
    if plain in ("int",):
        return int
    if plain in ("float",):
        return float
    if plain in ("str",):
        return str
    if plain in ("Path", "str|Path"):
        return Path
    if plain == "bool":
        return _boolean
    return _yaml_value  # tuples, lists, dicts, unions: YAML text


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type, helps: dict[str, str]) -> None:
    """One `--field-name` option per dataclass field; fields without a default are required."""
    for field in dataclasses.fields(config_class):
        if not field.metadata.get("option", True):  # filled in by the program, never set by hand
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not MISSING else (
            field.default_factory() if field.default_factory is not MISSING else MISSING
        )  # fmt: skip
        help_text = helps.get(field.name, "")
        if default is MISSING or default is None:  # required, or "not set" (the help says what then)
            parser.add_argument(flag, dest=field.name, type=_argument_type(field.type), default=None, help=help_text)
        else:
            parser.add_argument(
                flag,
                dest=field.name,
                type=_argument_type(field.type),
                default=None,
                help=f"{help_text} (default: {default})",
            )


def config_from_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, config_class: type, *, section: dict | None = None
):
    """Defaults < params.yaml section < command line; a bad value or a missing option exits with a clear error."""
    names = {f.name for f in dataclasses.fields(config_class)}
    section = dict(section or {})
    if unknown := set(section) - names:
        parser.error(f"unknown options in params section: {sorted(unknown)} (known: {sorted(names)})")
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values = {**section, **given}
    if "origins" in names:  # the config records where each explicitly set value came from
        values["origins"] = {**{k: "params.yaml" for k in section}, **{k: "command line" for k in given}}
    required = [
        f.name
        for f in dataclasses.fields(config_class)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in values
    ]
    if required:
        parser.error("missing required options: " + ", ".join("--" + r.replace("_", "-") for r in required))
    try:
        if hasattr(config_class, "from_dict"):
            return config_class.from_dict(values)
        return config_class(**values)
    except (TypeError, ValueError) as error:
        parser.error(str(error))


def load_params(path: str | Path | None, section: str) -> dict:
    """The named section of a params.yaml (empty when no file is given)."""
    if not path:
        return {}
    params = yaml.safe_load(Path(path).read_text()) or {}
    return params.get(section) or {}
