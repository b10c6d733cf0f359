"""Command lines from config dataclasses: one option per field, validated into the one config object.

Options default to the dataclass defaults, overridden by a params.yaml section when `--params` is
given, overridden by the command line. Lists, tuples and dicts are given as YAML
(`--sources '[coco, ln_coco]'`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

import yaml

from model.settings import MISSING, default_of, help_of, is_option


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


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One `--field-name` option per dataclass field, with the field's help; fields without a default are required."""
    for field in dataclasses.fields(config_class):
        if not is_option(field):  # filled in by the program, never set by hand
            continue
        default = default_of(field)
        shown = "" if default is MISSING or default is None else f" (default: {default})"
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=_argument_type(field.type),
            default=None,  # None: not given, so params.yaml's value (or the default) holds
            help=help_of(field) + shown,
        )


def config_parser(*, doc: str, prog: str, config_class: type, section: str) -> argparse.ArgumentParser:
    """The command line of a step: `--params` (a params.yaml), `--print-params`, and one option per
    field of its config; the step adds its own options before `parse_config`."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc.split(":", 1)[1].strip(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, help=f"a params.yaml whose `{section}` section gives defaults")
    parser.add_argument(
        "--print-params",
        action="store_true",
        help=f"print a `{section}` section of params.yaml with every option's default and help, and exit",
    )
    add_config_arguments(parser, config_class)
    parser.set_defaults(config_class=config_class, section=section)
    return parser


def parse_config(parser: argparse.ArgumentParser, argv: list[str] | None = None):
    """The step's validated config (defaults < params.yaml section < command line) and all parsed arguments."""
    config_class, section = parser.get_default("config_class"), parser.get_default("section")
    if "--print-params" in (sys.argv[1:] if argv is None else argv):  # before parsing: needs no other option
        print(params_section(config_class, section), end="")
        parser.exit()
    args = parser.parse_args(argv)
    config = config_from_arguments(parser, args, config_class, section=load_params(args.params, section))
    return config, args


def params_section(config_class: type, section: str) -> str:
    """A params.yaml section with every option of `config_class`: its default (or `null`: required) and help."""
    lines = [f"{section}:"]
    for field in dataclasses.fields(config_class):
        if not is_option(field):
            continue
        default = default_of(field)
        value = None if default is MISSING else default
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        text = text.removesuffix("\n...")  # a lone scalar ends its YAML document
        required = "required; " if default is MISSING else ""
        lines.append(f"  {field.name}: {text}  # {required}{help_of(field)}")
    return "\n".join(lines) + "\n"


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
        return config_class.from_dict(values)
    except (TypeError, ValueError) as error:
        parser.error(str(error))


def load_params(path: str | Path | None, section: str) -> dict:
    """The named section of a params.yaml (empty when no file is given)."""
    if not path:
        return {}
    params = yaml.safe_load(Path(path).read_text()) or {}
    return params.get(section) or {}
