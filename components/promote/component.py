"""kfp components: the gate (register the candidate, decide) and the promotion it guards.

The gate returns one bool (the condition of the pipeline's dsl.If) and writes its decision as
an artifact that promote and deploy read the registered version from.
"""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def gate(
    model: Input[Model],
    evaluation: Input[Artifact],
    model_name: str,
    tracking_uri: str,
    settings: dict,
    decision: Output[Artifact],
) -> bool:
    """Register the candidate as a new version (alias `challenger`) with its metrics and lineage,
    and decide against the thresholds (`settings`: GateConfig fields, the pipeline's `gate`
    parameter) and the current champion. Moves no `champion` alias. An empty model_name registers
    under the model's architecture ("xmcgan", "mirrorgan")."""
    from pathlib import Path

    from components.promote import GateConfig, promote
    from components.settings import step_config

    summary = promote(
        evaluation=Path(evaluation.path) / "evaluation.json",
        name=model_name,
        tracking_uri=tracking_uri,
        out_dir=decision.path,
        model_dir=model.path,
        move_champion=False,
        gate=step_config("gate", GateConfig, settings),
    )
    decision.metadata.update(
        {"promote": summary["promote"], "name": summary["name"], "version": str(summary["version"])}
    )
    return summary["promote"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote(decision: Input[Artifact], tracking_uri: str) -> str:
    """Move the `champion` alias to the version that passed the gate; returns the previous champion's version."""
    from components.promote import crown

    previous = crown(decision.metadata["name"], version=decision.metadata["version"], tracking_uri=tracking_uri)
    return previous or ""
