"""kfp components: the gate (register the candidate, decide) and the promotion it guards."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def gate(
    model: Input[Model],
    evaluation: Input[Artifact],
    model_name: str,
    tracking_uri: str,
    max_fid: float,
    min_rprecision: float,
    fid_tolerance: float,
    rprecision_tolerance: float,
    decision: Output[Artifact],
) -> NamedTuple("Gate", [("promote", bool), ("version", str), ("reasons", str)]):
    """Register the candidate as a new version (alias `challenger`) with its metrics and lineage,
    and decide against the thresholds and the current champion. Moves no `champion` alias."""
    from collections import namedtuple
    from pathlib import Path

    from components.promote import GateConfig, promote

    summary = promote(
        evaluation=Path(evaluation.path) / "evaluation.json",
        name=model_name,
        tracking_uri=tracking_uri,
        out_dir=decision.path,
        model_dir=model.path,
        move_champion=False,
        gate=GateConfig(
            max_fid=max_fid,
            min_rprecision=min_rprecision,
            fid_tolerance=fid_tolerance,
            rprecision_tolerance=rprecision_tolerance,
        ),
    )
    decision.metadata.update({"promote": summary["promote"], "version": summary["version"]})
    return namedtuple("Gate", ["promote", "version", "reasons"])(
        summary["promote"], str(summary["version"]), "\n".join(summary["reasons"])
    )


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote(model_name: str, version: str, tracking_uri: str) -> str:
    """Move the `champion` alias to `version` (which passed the gate); returns the previous champion's version."""
    from components.promote import crown

    return crown(model_name, version=version, tracking_uri=tracking_uri)
