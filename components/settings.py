"""A step's settings on their way through the pipeline: one dict per step, its config's fields by name.

Each step's config dataclass declares its settings once (model/settings.py). The Kubeflow pipeline
takes one dict parameter per step, named after the step's params.yaml section (`ingest`, `train`,
`evaluate`, ...) and holding that config's fields under their own names; its compiled default lists
every field with its default, so the Kubeflow UI and `kfp run create train='{"g_lr": 2e-4}'` show
and set the same names as params.yaml and the command line. A field added to a config reaches all
of them with no other edit.

Some fields a step does not take from its dict: the pipeline sets them (`WIRED`), from an artifact
(paths), from a setting shared by several steps (`seed`, `preset`, the trained `source`) or from
another step's settings (the embed step's `encoder`, the pretrain step's `damsm`). A dict that sets
one of them is refused, naming where the value comes from instead.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from model.settings import MISSING, default_of, is_option

# step (params.yaml section) -> field -> where the pipeline takes its value from
WIRED: dict[str, dict[str, str]] = {
    "demo": {"out": "the raw-data artifact"},
    "ingest": {
        "input_root": "the raw-data artifact",
        "output_root": "the records artifact",
        "sources": "the pipeline's `sources` (one ingest per source)",
    },
    "embed": {
        "data_root": "the records artifact",
        "output_root": "the embeddings artifact",
        "sources": "the pipeline's `sources` (one embed per source)",
    },
    "validate": {
        "data_root": "the merged dataset artifact",
        "report_dir": "the report artifact",
        "sources": "the pipeline's `sources`",
        "require_embeddings": "every source (the pipeline embeds each)",
    },
    "pretrain": {
        "data_root": "the dataset artifact",
        "out": "<runs_root>/<run>/pretrained",
        "preset": "the pipeline's `preset`",
        "image_size": "the preset (and train's model_overrides)",
        "sources": "the pipeline's `source`",
        "cache_dir": "the pipeline's `cache_dir`",
        "data_version": "the dataset artifact",
    },
    "train": {
        "run_dir": "<runs_root>/<run>",
        "data_root": "the dataset artifact",
        "sources": "the pipeline's `source`",
        "encoder": "the embed step's `encoder` (the one the embeddings were made with)",
        "max_lengths": "the embed step's `max_lengths`",
        "preset": "the pipeline's `preset`",
        "pretrained": "the pretrain step",
        "seed": "the pipeline's `seed`",
        "provenance": "the dataset artifact's data version",
    },
    "evaluate": {
        "source": "the pipeline's `source`",
        "seed": "the pipeline's `seed`",
        "cache_dir": "the pipeline's `cache_dir`",
        "damsm": "the pretrain step's `damsm` (its DAMSM is reused)",
    },
    "gate": {},
    "deploy": {"seed": "the pipeline's `seed`"},
}


def _plain(value):
    """JSON-able form of a default: tuples as lists, paths as strings."""
    return json.loads(json.dumps(value, default=lambda v: str(v) if isinstance(v, Path) else list(v)))


def settable_fields(step: str, config_class: type) -> list[dataclasses.Field]:
    """The fields of `config_class` a pipeline user sets in the step's dict."""
    return [f for f in dataclasses.fields(config_class) if is_option(f) and f.name not in WIRED[step]]


def step_defaults(step: str, config_class: type) -> dict:
    """The step dict's default: every settable field with its default (the compiled pipeline shows
    it), except those whose default is None ("not set", e.g. the recipe fields the preset decides):
    kfp has no null, and an absent field means the same."""
    defaults = {}
    for field in settable_fields(step, config_class):
        default = default_of(field)
        if default is MISSING:
            raise TypeError(f"{config_class.__name__}.{field.name} has no default but is not set by the pipeline")
        if default is not None:
            defaults[field.name] = _plain(default)
    return defaults


def section_settings(step: str, config_class: type, section: dict) -> dict:
    """A params.yaml section as the step's dict: the fields the pipeline sets itself dropped (the DVC
    stages' paths, sources, ...), and null ones (not set: kfp has no null); an unknown name is refused."""
    known = {f.name for f in dataclasses.fields(config_class)}
    if unknown := sorted(set(section) - known):
        raise ValueError(f"params.yaml section {step!r}: unknown fields {unknown}; known: {sorted(known)}")
    return {name: value for name, value in section.items() if name not in WIRED[step] and value is not None}


def step_config(step: str, config_class: type, settings: dict, **wired):
    """The step's config from its pipeline dict and the values the pipeline wires in (exactly WIRED[step])."""
    internal = {f.name for f in dataclasses.fields(config_class) if not is_option(f)}  # e.g. TrainConfig.origins
    if set(wired) - internal != set(WIRED[step]):
        raise TypeError(f"step {step!r} wires {sorted(wired)}, WIRED says {sorted(WIRED[step])}")
    if clash := sorted(set(settings) & (set(wired) | internal)):
        sources = "; ".join(f"{name} comes from {WIRED[step].get(name, 'the step itself')}" for name in clash)
        raise ValueError(f"the {step} settings may not set {clash}: {sources}")
    return config_class.from_dict({**settings, **wired})
