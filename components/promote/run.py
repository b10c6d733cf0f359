"""The promotion step: register an evaluated model, run the gate, move the aliases.

Every evaluated model becomes a registry version carrying its scores and lineage; `challenger`
always moves to the newest version; `champion` moves only when the gate passes. The decision
(JSON) is written to the output folder, logged to the promotion run and printed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from components import atomic
from components.lineage import code_version
from components.tracking import use_experiment

from . import registry
from .config import GateConfig
from .gate import Decision, decide

EXPERIMENT = "xmcgan-promotion"
GATE_METRICS = ("fid", "kid_mean", "r_precision", "r_precision_std", "caption_accuracy")


def gate_scores(evaluation: dict) -> dict:
    """The model's scores in an evaluation summary, with the key that says what they are comparable with."""
    scores = evaluation["scores"]["model"]
    return {"evaluation_key": evaluation["evaluation_key"], **{k: scores.get(k) for k in GATE_METRICS}}


def produced_by_tags(produced_by: dict) -> dict:
    """What produced the scores, as flat version tags."""
    extractor, encoder = produced_by["extractor"], produced_by["rprecision_encoder"]
    return {
        "eval.extractor": extractor["name"],
        "eval.extractor_sha256": extractor["weights_sha256"],
        "eval.resize": extractor["resize"],
        "eval.num_generated": produced_by["num_generated"],
        "eval.num_real": produced_by["num_real"],
        "eval.image_size": produced_by["image_size"],
        "eval.rprecision_encoder": encoder.get("version") or encoder["name"],
        "eval.rprecision_candidates": produced_by["rprecision"]["candidates"],
    }


def reevaluate_with(evaluation: dict) -> Callable[[Path], dict]:
    """Score another model folder exactly as `evaluation` scored the candidate (same data, caption set, config)."""

    def score(model_dir: Path) -> dict:
        from components.evaluate import EvalConfig, evaluate

        pinned = evaluation["caption_set"]["path"]  # the set is also re-drawn identically from data and seed
        config = EvalConfig.from_dict(
            {**evaluation["config"], "caption_set": pinned if Path(pinned).is_file() else None}
        )
        with tempfile.TemporaryDirectory(prefix="champion-eval-") as out:
            result = evaluate(
                data_root=evaluation["data_root"],
                out_dir=out,
                data_version=evaluation["data_version"],
                config=config,
                model_dir=model_dir,
            )
        if result["evaluation_key"] != evaluation["evaluation_key"]:
            raise RuntimeError(
                f"re-evaluating the champion gave evaluation key {result['evaluation_key']}, "
                f"expected {evaluation['evaluation_key']}: the evaluation inputs changed"
            )
        return gate_scores(result)

    return score


def champion_scores(mlflow_client, name: str, evaluation: dict, *, gate: GateConfig, score, tracking_uri, log):
    """The current champion's scores on this evaluation: from its tags, else by re-evaluating it."""
    champion = registry.version_by_alias(mlflow_client, name, registry.CHAMPION)
    if champion is None:
        return None
    key = evaluation["evaluation_key"]
    scores = registry.scores_on(champion, key)
    if scores is None and gate.reevaluate_champion:
        log(f"promote: champion v{champion.version} has no scores on evaluation {key}: re-evaluating it")
        with tempfile.TemporaryDirectory(prefix="champion-") as folder:
            scores = score(registry.download_model(name, tracking_uri=tracking_uri, alias=champion.version, dst=folder))
        registry.record_scores(mlflow_client, name, champion.version, key, scores)
    if scores is None:
        return {"version": str(champion.version), "evaluation_key": champion.tags.get("evaluation_key")}
    return {"version": str(champion.version), **scores, "evaluation_key": key}


def promote(
    *,
    evaluation: dict | str | Path,
    name: str,
    tracking_uri: str,
    out_dir: str | Path,
    gate: GateConfig | None = None,
    model_dir: str | Path | None = None,
    evaluation_dir: str | Path | None = None,
    score_champion: Callable[[Path], dict] | None = None,
    move_champion: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Register the evaluated model as a version of `name`, decide, and move the aliases. An empty
    `name` is the model's architecture ("xmcgan", "mirrorgan"): a registered model holds one family.

    With `move_champion=False` only `challenger` moves: the pipeline's gate step decides and a
    separate promote step, which runs only when the gate passed, calls `crown`.

    `evaluation` is the evaluate step's summary (or its evaluation.json path); `model_dir` defaults
    to the folder it evaluated; `evaluation_dir` (default: the folder of evaluation.json) holds the
    report files logged with the version. `score_champion(model_dir) -> scores` re-scores a
    champion that was never scored on this evaluation (default: the evaluate step with the same
    config and caption set). Writes decision.json; returns a summary of what happened.
    """
    import mlflow

    gate = gate or GateConfig()
    if not isinstance(evaluation, dict):
        evaluation_dir = evaluation_dir or Path(evaluation).parent
        evaluation = json.loads(Path(evaluation).read_text())
    model_dir = Path(model_dir or evaluation["model"]["path"] or "")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no model folder (config.json) at {model_dir}: pass model_dir")
    architecture = registry.model_architecture(model_dir)
    name = name or architecture
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.unpublish(out_dir / "decision.json")
    mlflow_client = registry.client(tracking_uri)
    registry.check_family(mlflow_client, name, architecture)  # before any champion is looked at

    candidate = gate_scores(evaluation)
    score = score_champion or reevaluate_with(evaluation)
    champion = champion_scores(
        mlflow_client, name, evaluation, gate=gate, score=score, tracking_uri=tracking_uri, log=log
    )
    decision: Decision = decide(candidate, champion, gate)

    provenance = evaluation["model"].get("provenance", {})
    lineage = {
        "training_run_id": provenance.get("training_run_id") or provenance.get("run_id") or "unknown",
        "data_version": evaluation["data_version"],
        "training_data_version": provenance.get("data_version", "unknown"),
        "evaluation_set": evaluation["caption_set"]["id"],
        "evaluation_key": evaluation["evaluation_key"],
        "code_version": provenance.get("code_version") or code_version(),
        **produced_by_tags(evaluation["produced_by"]),
    }
    use_experiment(tracking_uri, EXPERIMENT)
    with mlflow.start_run(run_name=f"promote-{name}") as run:
        mlflow.set_tags({**lineage, "gate.promote": str(decision.promote)})
        mlflow.log_params({"extractor": evaluation["produced_by"]["extractor"]["name"], **gate.to_dict()})
        mlflow.log_metrics({k: v for k, v in candidate.items() if isinstance(v, float)})
        mlflow.log_metric("gate_passed", float(decision.promote))
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        mlflow.log_dict(evaluation, "evaluation/evaluation.json")
        if evaluation_dir is not None:
            for file_name in ("report.html", "samples.png", "caption_set.json"):
                if (Path(evaluation_dir) / file_name).is_file():
                    mlflow.log_artifact(str(Path(evaluation_dir) / file_name), artifact_path="evaluation")
        mlflow.log_dict(decision.to_dict(), "decision.json")
        run_id = run.info.run_id

    metrics = {k: v for k, v in candidate.items() if k != "evaluation_key" and v is not None}
    tags = {
        **lineage,
        **{registry.METRIC_TAG + k: v for k, v in metrics.items()},
        registry.SCORE_TAG + evaluation["evaluation_key"]: json.dumps(metrics, sort_keys=True),
        "gate": "passed" if decision.promote else "failed",
    }
    # A re-run after a kill between registering and moving the aliases finds its version: the same
    # trained model, evaluation and decision is one version, not two.
    version = registry.version_with_tags(mlflow_client, name, tags) or registry.register_version(
        mlflow_client,
        name=name,
        architecture=architecture,
        run_id=run_id,
        artifact_path="model",
        tags=tags,
        description=(
            f"FID {candidate['fid']:.4g}, R-precision {candidate['r_precision']:.4g} on evaluation set "
            f"{lineage['evaluation_set']} (data {lineage['data_version']}); trained in run "
            f"{lineage['training_run_id']}; gate {'passed' if decision.promote else 'failed'}"
        ),
    )
    mlflow_client.set_registered_model_alias(name, registry.CHALLENGER, version.version)
    if decision.promote and move_champion:
        mlflow_client.set_registered_model_alias(name, registry.CHAMPION, version.version)

    atomic.write_text(out_dir / "decision.json", json.dumps(decision.to_dict(), indent=2))
    champion_now = registry.version_by_alias(mlflow_client, name, registry.CHAMPION)
    summary = {
        "promote": decision.promote,
        "reasons": decision.reasons,
        "name": name,
        "architecture": architecture,
        "version": str(version.version),
        "champion_version": str(champion_now.version) if champion_now else None,
        "run_id": run_id,
        "decision_path": str(out_dir / "decision.json"),
    }
    log(f"promote: {name} v{version.version} {'PROMOTED to champion' if decision.promote else 'not promoted'}")
    for reason in decision.reasons:
        log(f"promote:   {reason}")
    return summary


def crown(name: str, *, version: str, tracking_uri: str) -> str | None:
    """Move `champion` to `version`, which must carry the gate's pass; returns the previous champion's version."""
    mlflow_client = registry.client(tracking_uri)
    candidate = mlflow_client.get_model_version(name, str(version))
    if candidate.tags.get("gate") != "passed":
        raise ValueError(
            f"{name} v{version} did not pass the gate (tag gate={candidate.tags.get('gate')!r}): "
            "the champion stays where it is"
        )
    previous = registry.version_by_alias(mlflow_client, name, registry.CHAMPION)
    mlflow_client.set_registered_model_alias(name, registry.CHAMPION, str(version))
    return str(previous.version) if previous else None
