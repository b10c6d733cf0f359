"""The XMC-GAN pipeline, raw data to a served model, as one Kubeflow pipeline.

    raw-data -> for each source: ingest -> embed -> validate (merge) -> train -> evaluate -> gate
             -> if the gate passes: promote (champion alias) -> deploy (serve + real request)

Commands (`python -m pipelines.xmcgan_pipeline COMMAND --help` for options):
    run-local   run the whole pipeline on this machine (kfp's SubprocessRunner, no cluster)
    compile     write the pipeline YAML for a Kubeflow Pipelines cluster
    submit      compile and start a run on a Kubeflow Pipelines endpoint
    schedule    create a recurring run (cron) for scheduled retraining

Parameters: one dict per step, named after the step's params.yaml section and holding its config's
fields (`train`, `evaluate`, ...: components/settings.py), plus the few that several steps share
(`sources`, `source`, `preset`, `seed`, ...). run-local reads them from params.yaml (each step's
section, and the `pipeline` section for the shared ones); `--set name=value` overrides a shared
one, `--set step.field=value` one setting of a step (values are YAML: `--set train.g_lr=2e-4`,
`--set sources='[coco]'`).
"""

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import yaml
from kfp import compiler, dsl

from components.demo_data import DemoDataConfig
from components.deploy.component import deploy as deploy_op
from components.deploy.config import DeployConfig
from components.embed.component import embed as embed_op
from components.embed.config import EmbedConfig
from components.evaluate.component import evaluate as evaluate_op
from components.evaluate.config import EvalConfig
from components.ingest.component import ingest as ingest_op
from components.ingest.config import IngestConfig
from components.lineage import code_fingerprint
from components.pretrain.component import architecture, no_pretraining
from components.pretrain.component import pretrain as pretrain_op
from components.pretrain.config import PretrainConfig
from components.promote.component import gate as gate_op
from components.promote.component import promote as promote_op
from components.promote.config import GateConfig
from components.raw_data.component import raw_data as raw_data_op
from components.raw_data.component import raw_data_version as raw_data_version_op
from components.settings import WIRED, section_settings, settable_fields, step_defaults
from components.train.component import train as train_op
from components.validate.component import validate as validate_op
from components.validate.config import ValidateConfig
from model.config import DEMO_PRESET
from model.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]
PIPELINE_NAME = "xmcgan"


def cached(task, component_module: str):
    """Let `task` reuse an earlier run's outputs, keyed (besides its inputs and settings) by the
    source of the code it runs: an edited step re-runs, and with it every step after it, since
    its outputs are new. The gate, promote and deploy change the registry and the served model,
    so they always run."""
    task.set_caching_options(True)
    return task.set_env_variable("XMCGAN_CODE_FINGERPRINT", code_fingerprint(component_module))


# Each step's settings: one dict parameter named after its params.yaml section, holding its config's
# fields (components/settings.py). The compiled pipeline's default of each lists every field.
STEP_CONFIGS = {
    "demo": DemoDataConfig,
    "ingest": IngestConfig,
    "embed": EmbedConfig,
    "validate": ValidateConfig,
    "pretrain": PretrainConfig,
    "train": TrainConfig,
    "evaluate": EvalConfig,
    "gate": GateConfig,
    "deploy": DeployConfig,
}
DEFAULTS = {step: step_defaults(step, config_class) for step, config_class in STEP_CONFIGS.items()}


@dsl.pipeline(
    name=PIPELINE_NAME, description="XMC-GAN text-to-image: data, training, evaluation, gated promotion, serving"
)
def xmcgan_pipeline(
    # raw data: a DVC repository (dvc_rev empty: its newest revision), a folder or bucket, else the demo dataset
    raw_data_uri: str = "",
    dvc_repo: str = "",
    dvc_rev: str = "",
    # settings several steps share
    sources: list[str] = ["coco", "ln_coco"],  # noqa: B006 - ingested, embedded and validated (kfp defaults are literals)
    source: str = "coco",  # what is trained on and scored
    preset: str = DEMO_PRESET,  # architecture and training recipe (model/config.py PRESETS): cpu-32, mirrorgan-32, ...
    seed: int = 0,  # of training, the evaluation's caption set and noise, the deploy's images
    gpus: int = 0,
    runs_root: str = "/runs",
    cache_dir: str = "/cache",
    tracking_uri: str = "",
    experiment: str = "xmcgan",
    model_name: str = "",  # registered model; empty: the architecture's name ("xmcgan", "mirrorgan")
    # each step's settings
    demo: dict = DEFAULTS["demo"],
    ingest: dict = DEFAULTS["ingest"],
    embed: dict = DEFAULTS["embed"],
    validate: dict = DEFAULTS["validate"],
    pretrain: dict = DEFAULTS["pretrain"],
    train: dict = DEFAULTS["train"],
    evaluate: dict = DEFAULTS["evaluate"],
    gate: dict = DEFAULTS["gate"],
    deploy: dict = DEFAULTS["deploy"],
):
    source_data = dict(raw_data_uri=raw_data_uri, dvc_repo=dvc_repo, dvc_rev=dvc_rev, demo=demo)
    version = raw_data_version_op(**source_data).set_display_name("data version")
    version.set_caching_options(False)
    raw = raw_data_op(version=version.output, **source_data).set_display_name("raw data")
    cached(raw, "components.raw_data.component")

    with dsl.ParallelFor(sources) as each_source:
        records = ingest_op(raw=raw.outputs["raw"], source=each_source, settings=ingest).set_display_name("ingest")
        cached(records, "components.ingest.component")
        embeddings = embed_op(records=records.outputs["records"], source=each_source, settings=embed)
        cached(embeddings.set_display_name("embed"), "components.embed.component")

    checked = validate_op(
        records=dsl.Collected(records.outputs["records"]),
        embeddings=dsl.Collected(embeddings.outputs["embeddings"]),
        sources=sources,
        settings=validate,
    ).set_display_name("validate")
    cached(checked, "components.validate.component")

    family = architecture(preset=preset).set_display_name("architecture")
    cached(family, "components.pretrain.component")
    with dsl.If(family.output == "mirrorgan", name="mirrorgan-pretraining"):
        pretrained = pretrain_op(
            dataset=checked.outputs["dataset"],
            source=source,
            preset=preset,
            settings=pretrain,
            train=train,
            cache_dir=cache_dir,
            runs_root=runs_root,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            tracking_uri=tracking_uri,
        ).set_display_name("pretrain")
        cached(pretrained, "components.pretrain.component")
    with dsl.Else(name="no-pretraining-needed"):
        none_needed = no_pretraining().set_display_name("no pretraining")
        cached(none_needed, "components.pretrain.component")

    trained = train_op(
        dataset=checked.outputs["dataset"],
        source=source,
        preset=preset,
        settings=train,
        embed=embed,
        pretrained=dsl.OneOf(pretrained.outputs["Output"], none_needed.output),
        gpus=gpus,
        runs_root=runs_root,
        run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        tracking_uri=tracking_uri,
        experiment=experiment,
        seed=seed,
    ).set_display_name("train")
    trained.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus)
    cached(trained, "components.train.component")  # scheduled runs turn caching off (schedule())

    scored = evaluate_op(
        model=trained.outputs["model"],
        dataset=checked.outputs["dataset"],
        source=source,
        seed=seed,
        cache_dir=cache_dir,
        settings=evaluate,
        pretrain=pretrain,
    ).set_display_name("evaluate")
    cached(scored, "components.evaluate.component")

    decided = gate_op(
        model=trained.outputs["model"],
        evaluation=scored.outputs["evaluation"],
        model_name=model_name,
        tracking_uri=tracking_uri,
        settings=gate,
    ).set_display_name("gate")
    decided.set_caching_options(False)

    with dsl.If(decided.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - a kfp condition
        promoted = promote_op(decision=decided.outputs["decision"], tracking_uri=tracking_uri)
        promoted.set_display_name("promote").set_caching_options(False)
        served = deploy_op(decision=decided.outputs["decision"], tracking_uri=tracking_uri, seed=seed, settings=deploy)
        served.after(promoted).set_display_name("deploy").set_caching_options(False)


# ---------------------------------------------------------------------------------------------
# Parameters: params.yaml (each step's section, the `pipeline` section) < --set


def pipeline_parameters(params_file: Path | None, overrides: list[str]) -> dict:
    """A run's parameters: each step's settings from its params.yaml section (less the fields the
    pipeline sets itself: components/settings.py WIRED), the shared ones from the `pipeline`
    section, then `--set name=value` (a shared parameter) or `--set step.field=value` (one setting
    of a step). Values are YAML."""
    params = (yaml.safe_load(params_file.read_text()) or {}) if params_file and params_file.is_file() else {}
    values = dict(params.get("pipeline") or {})
    if misplaced := sorted(set(values) & set(STEP_CONFIGS)):
        raise SystemExit(f"params.yaml: set {misplaced} in their own sections, not in `pipeline`")
    for step, config_class in STEP_CONFIGS.items():
        if params.get(step):
            try:
                values[step] = section_settings(step, config_class, params[step])
            except ValueError as error:
                raise SystemExit(str(error)) from None
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects name=value or step.field=value, got {item!r}")
        step, dot, field = name.replace("-", "_").partition(".")
        if not dot:
            values[step] = yaml.safe_load(text)
            continue
        if step not in STEP_CONFIGS:
            raise SystemExit(f"--set {name}: no step {step!r}; steps: {sorted(STEP_CONFIGS)}")
        values[step] = {**values.get(step, {}), field: yaml.safe_load(text)}
        if values[step][field] is None:  # null: not set (kfp has no null), the config's default
            del values[step][field]
    return check_parameters(values)


def check_parameters(values: dict) -> dict:
    """`values` as the pipeline's arguments: every name a parameter, every step setting a field of its
    config the pipeline does not set itself; a clear error otherwise."""
    import inspect

    known = inspect.signature(xmcgan_pipeline.pipeline_func).parameters
    if unknown := sorted(set(values) - set(known)):
        raise SystemExit(f"unknown pipeline parameters {unknown}; known: {sorted(known)}")
    for step in set(values) & set(STEP_CONFIGS):
        if not isinstance(values[step], dict):
            raise SystemExit(f"pipeline parameter {step!r} is the {step} step's settings: a map, got {values[step]!r}")
        settable = {f.name for f in settable_fields(step, STEP_CONFIGS[step])}
        for field in sorted(set(values[step]) - settable):
            if field in WIRED[step]:
                raise SystemExit(f"{step}.{field}: the pipeline sets {field} from {WIRED[step][field]}")
            raise SystemExit(f"{step}.{field}: {step} has no setting {field!r}; its settings: {sorted(settable)}")
    # YAML reads 1000 as an int; kfp refuses an int for a float parameter
    return {k: float(v) if known[k].annotation is float and isinstance(v, int) else v for k, v in values.items()}


def merge_parameters(base: dict, override: dict) -> dict:
    """`override` over `base`, step settings merged field by field."""
    merged = {**base, **override}
    for name in base.keys() & override.keys():
        if isinstance(base[name], dict) and isinstance(override[name], dict):
            merged[name] = {**base[name], **override[name]}
    return merged


def compile_pipeline(output: Path) -> Path:
    compiler.Compiler().compile(xmcgan_pipeline, str(output))
    return output


# ---------------------------------------------------------------------------------------------
# Local runs


def local_defaults(output: Path) -> dict:
    """Where a local run keeps state that outlives one run: checkpoints, caches, the MLflow database."""
    output = output.resolve()
    return {
        "runs_root": str(output / "runs"),
        "cache_dir": str(output / "cache"),
        "tracking_uri": f"sqlite:///{output / 'mlflow.db'}",
        "deploy": {"mode": "local"},
    }


def run_local(*, parameters: dict, output: Path, console: bool = False) -> dict:
    """Run the pipeline with kfp's SubprocessRunner in this interpreter; returns the run's summary.

    Steps whose code, inputs and settings are unchanged since an earlier run are reused from the
    kfp cache (<output>/kfp-cache). With `console`, the terminal shows one line per step
    (pipelines/console.py) and what the steps print goes to log files under <output>/logs/<run>/."""
    from kfp import local

    from pipelines import console as step_console

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    folders = RunFolders(output / "pipeline-root", output / "kfp-cache")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(folders.root),
        enable_caching=True,
        cache_root=str(folders.cache_root),
    )
    arguments = merge_parameters(local_defaults(output), parameters)
    started = time.time()
    log_dir = output / "logs" / time.strftime("%Y%m%d-%H%M%S")
    root_logger, level = logging.getLogger(), logging.getLogger().level
    root_logger.addHandler(folders)  # kfp logs each cache hit on the root logger, outside its task logging
    root_logger.setLevel(logging.INFO)
    figure = lambda step, index: key_figure(folders, step, index)  # noqa: E731
    attached = step_console.attach(log_dir, key_figure=figure) if console else None
    try:
        xmcgan_pipeline(**arguments)
    finally:
        if attached:
            step_console.detach(attached)
        root_logger.removeHandler(folders)
        root_logger.setLevel(level)
    summary = summarise_local_run(folders, arguments=arguments, seconds=time.time() - started)
    summary["logs"] = str(log_dir) if console else None
    (folders.run_dir() / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


CACHE_HIT = re.compile(r"Task (\S+) cache hit \(key=(\w+)\)")


class RunFolders(logging.Handler):
    """Where the outputs of each step of the running local pipeline are: in the run's own folder,
    or, for a step reused from the cache, in the folder of the earlier run that made them (heard
    as a logging handler: kfp logs "Task NAME cache hit (key=...)")."""

    def __init__(self, root: Path, cache_root: Path):
        super().__init__(logging.INFO)
        self.root, self.cache_root = root, cache_root
        self.before = set(root.glob(f"{PIPELINE_NAME}-*")) if root.is_dir() else set()
        self.reused: dict[str, dict[Path, float]] = {}  # step -> {folder: when this run reused it}

    def run_dir(self) -> Path | None:
        runs = sorted(set(self.root.glob(f"{PIPELINE_NAME}-*")) - self.before)
        return runs[-1] if runs else None

    def emit(self, record: logging.LogRecord) -> None:
        if hit := CACHE_HIT.search(record.getMessage()):
            self.reuse(hit.group(1).strip("'"), hit.group(2))

    def reuse(self, step: str, key_prefix: str) -> None:
        """Record the folder of a cache hit (kfp logs the first characters of the cache key)."""
        for entry in self.cache_root.glob(f"{key_prefix}*.json"):
            for output in json.loads(entry.read_text()).values():
                artifacts = output.get("artifacts", [output]) if isinstance(output, dict) else []
                for artifact in artifacts:
                    if isinstance(artifact, dict) and artifact.get("uri"):
                        folder = Path(artifact["uri"]).parent
                        self.reused.setdefault(step, {}).setdefault(folder, time.time())
                        break

    def tasks(self, step: str) -> list[Path]:
        """Every folder of `step` in this run (a step inside a ParallelFor has one per iteration) in the order
        they ended in this run: a task's when it wrote its output, a reused one's when it was reused (not
        when the earlier run made it: the terminal's n-th line of a step is its n-th task to end)."""
        run = self.run_dir()
        ended = {p.parent: p.stat().st_mtime for p in run.rglob(f"{step}/executor_output.json")} if run else {}
        ended |= self.reused.get(step, {})
        return sorted(ended, key=ended.get)

    def task(self, step: str, index: int = -1) -> Path | None:
        """The step's task that ended `index`-th (default: the last)."""
        found = self.tasks(step)
        return found[index] if -len(found) <= index < len(found) else (found[-1] if found else None)


def key_figure(folders: RunFolders, step: str, index: int = -1) -> str:
    """The one figure the terminal shows when a step of the running pipeline succeeds (its
    `index`-th task to end: a ParallelFor runs one per source)."""
    task = folders.task(step, index)
    if task is None:
        return ""
    metrics = _artifact_metadata(task)
    if step == "raw-data":
        return f"data version {_parameter(task, 'Output')}"
    if step == "ingest":
        source = _artifact_metadata(task, "records").get("source", "")
        return (f"{source}: {int(metrics.get('images_in', 0))} images in = {int(metrics.get('images_written', 0))} "
                f"written + {int(metrics.get('images_rejected', 0))} rejected")  # fmt: skip
    if step == "embed":
        return f"{int(metrics.get('captions', 0))} captions"
    if step == "validate":
        return f"{int(metrics.get('checks_passed', 0))} checks passed, {int(metrics.get('checks_failed', 0))} failed"
    if step == "pretrain":
        damsm, stream = metrics.get("damsm_loss", 0), metrics.get("stream_caption_loss", 0)
        return f"DAMSM loss {damsm:.3g}, STREAM caption loss {stream:.3g}"
    if step == "train":
        return f"{int(metrics.get('images_seen', 0)):,} images in {metrics.get('wall_seconds', 0) / 60:.1f} min"
    if step == "evaluate":
        return ", ".join(f"{k} {metrics[k]:.3g}" for k in ("caption_accuracy", "r_precision", "fid") if k in metrics)
    if step == "gate":
        return "PASSED" if _parameter(task, "Output") else "FAILED (promote and deploy are skipped)"
    if step == "promote":
        return f"champion is version {_artifact_metadata(folders.task('gate'), 'decision').get('version', '?')}"
    if step == "deploy":
        return _artifact_metadata(task, "images").get("url", "")
    return ""


def _executor_output(task_dir: Path) -> dict:
    path = task_dir / "executor_output.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _artifact_metadata(task_dir: Path, name: str = "metrics") -> dict:
    for artifact in _executor_output(task_dir).get("artifacts", {}).get(name, {}).get("artifacts", []):
        return artifact.get("metadata", {})
    return {}


def _parameter(task_dir: Path, name: str):
    return _executor_output(task_dir).get("parameterValues", {}).get(name)


def summarise_local_run(folders: RunFolders, *, arguments: dict, seconds: float) -> dict:
    """What the run did, read back from its task outputs (its own or reused ones): counts, scores,
    the decision, where things are."""
    run_dir = folders.run_dir()

    def task(step: str) -> Path:  # a step that did not run (gate failed) has no folder: read as empty
        return folders.task(step) or run_dir / f"-{step}"

    evaluation_file = task("evaluate") / "evaluation" / "evaluation.json"
    evaluation = json.loads(evaluation_file.read_text()) if evaluation_file.is_file() else {}
    decision_file = task("gate") / "decision" / "decision.json"
    deploy_file = task("deploy") / "images" / "deploy.json"
    return {
        "seconds": round(seconds, 1),
        "run_dir": str(run_dir),
        "reused_from_cache": sorted(folders.reused),
        "raw_data_version": _parameter(task("raw-data"), "Output"),
        "ingest": {  # one per source: the ParallelFor's iterations
            _artifact_metadata(t, "records").get("source", t.parent.name): _artifact_metadata(t)
            for t in folders.tasks("ingest")
        },
        "validation": _artifact_metadata(task("validate")),
        "pretraining": _artifact_metadata(folders.task("pretrain")) if folders.task("pretrain") else None,
        "training": {
            **_artifact_metadata(task("train")),
            "preset": _artifact_metadata(task("train"), "model").get("preset", ""),
            "mlflow_run_id": _parameter(task("train"), "Output"),
        },
        "evaluation": {
            "metrics": evaluation.get("metrics", {}),
            "baselines": evaluation.get("scores", {}),
            "report": str(task("evaluate") / "report"),
        },
        "gate": json.loads(decision_file.read_text()) if decision_file.is_file() else None,
        "registered_version": _artifact_metadata(task("gate"), "decision").get("version"),
        "deploy": json.loads(deploy_file.read_text()) if deploy_file.is_file() else None,
        "tracking_uri": arguments["tracking_uri"],
    }


def print_summary(summary: dict) -> None:
    scores = summary["evaluation"]["metrics"]
    gate_result = summary["gate"] or {}
    lines = [
        "",
        f"Pipeline finished in {summary['seconds'] / 60:.1f} min ({summary['run_dir']})",
        f"  raw data version   {summary['raw_data_version']}",
    ]
    for source, counts in summary["ingest"].items():
        lines.append(
            f"  ingest {source:<11} {int(counts.get('images_in', 0))} images in = "
            f"{int(counts.get('images_written', 0))} written + {int(counts.get('images_rejected', 0))} rejected"
        )
    lines.append(
        f"  validation         {int(summary['validation'].get('checks_passed', 0))} checks passed, "
        f"{int(summary['validation'].get('checks_failed', 0))} failed"
    )
    if summary["pretraining"]:
        lines.append("  pretraining        " + ", ".join(f"{k} {v:.4g}" for k, v in summary["pretraining"].items()))
    lines += [
        f"  training           {summary['training'].get('preset', '')}, "
        f"{int(summary['training'].get('images_seen', 0))} images in "
        f"{summary['training'].get('wall_seconds', 0) / 60:.1f} min "
        f"(MLflow run {summary['training']['mlflow_run_id']})",
        "  evaluation         " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, int | float)),
        f"  gate               {'PASSED' if gate_result.get('promote') else 'FAILED'}; registered version "
        f"{summary['registered_version']}",
    ]
    lines += [f"                       {reason}" for reason in gate_result.get("reasons", [])]
    if summary["deploy"]:
        out = Path(summary["run_dir"]) / "deploy" / "images"
        lines.append(
            f"  deploy             {summary['deploy']['model_uri']} served at {summary['deploy']['url']}; "
            f"{len(summary['deploy']['files'])} images in {out}"
        )
    else:
        lines.append(
            "  deploy             skipped (the gate did not pass: the champion and the served model are untouched)"
        )
    lines += [
        f"  evaluation report  {summary['evaluation']['report']}",
        f"  MLflow UI          mlflow ui --backend-store-uri {summary['tracking_uri']} --host 127.0.0.1 --port 5000",
    ]
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Cluster: submit and schedule


def _client(host: str, namespace: str | None):
    import kfp

    return kfp.Client(host=host, namespace=namespace)


def submit(
    *, host: str, parameters: dict, experiment: str, run_name: str | None, namespace: str | None, package: Path
) -> str:
    compile_pipeline(package)
    result = _client(host, namespace).create_run_from_pipeline_package(
        str(package), arguments=parameters, run_name=run_name, experiment_name=experiment, namespace=namespace
    )
    return result.run_id


def schedule(*, host: str, spec: dict, namespace: str | None, package: Path) -> str:
    """A recurring run from a spec like manifests/recurring-run.yaml. Each run reads the newest data
    (the raw-data step fetches the newest DVC revision when dvc_rev is empty) and is gated against
    the champion at that time."""
    required = {"name", "experiment", "cron"}
    if missing := sorted(required - set(spec)):
        raise ValueError(f"recurring run spec is missing {missing}")
    if len(str(spec["cron"]).split()) != 6:
        raise ValueError(f"cron {spec['cron']!r} must have six fields, seconds first (e.g. '0 0 2 * * *')")
    compile_pipeline(package)
    client = _client(host, namespace)
    experiment = client.create_experiment(spec["experiment"], namespace=namespace)
    recurring = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=spec["name"],
        description=spec.get("description"),
        cron_expression=spec["cron"],
        max_concurrency=int(spec.get("max_concurrency", 1)),
        no_catchup=bool(spec.get("no_catchup", True)),
        params=check_parameters(spec.get("parameters") or {}),
        pipeline_package_path=str(package),
        enable_caching=False,
        service_account=spec.get("service_account"),
    )
    return recurring.recurring_run_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.xmcgan_pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    parameter_options = argparse.ArgumentParser(add_help=False)
    parameter_options.add_argument(
        "--params",
        type=Path,
        default=REPO / "params.yaml",
        help="params.yaml: each step's section gives its settings, the `pipeline` section the shared parameters",
    )
    parameter_options.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a shared parameter (name=value) or one step's setting (step.field=value), YAML values; repeatable",
    )

    local = commands.add_parser("run-local", parents=[parameter_options], help="run the whole pipeline on this machine")
    local.add_argument(
        "--output",
        type=Path,
        default=REPO / "outputs",
        help="pipeline root, runs, caches and the MLflow database (default: outputs/)",
    )
    build = commands.add_parser("compile", help="write the pipeline YAML")
    build.add_argument("--output", type=Path, default=Path("xmcgan_pipeline.yaml"))
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument("--host", required=True, help="Kubeflow Pipelines endpoint, e.g. https://kfp.example.com")
    cluster.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user clusters)")
    cluster.add_argument("--package", type=Path, default=Path("xmcgan_pipeline.yaml"), help="compiled YAML to write")
    run = commands.add_parser("submit", parents=[parameter_options, cluster], help="start a run on a cluster")
    run.add_argument("--experiment", default="xmcgan")
    run.add_argument("--run-name", default=None)
    recurring = commands.add_parser("schedule", parents=[cluster], help="create a recurring run from a spec file")
    recurring.add_argument("--spec", type=Path, default=REPO / "manifests" / "recurring-run.yaml")
    args = parser.parse_args(argv)

    if args.command == "compile":
        print(f"pipeline written to {compile_pipeline(args.output)}")
    elif args.command == "run-local":
        summary = run_local(parameters=pipeline_parameters(args.params, args.set), output=args.output, console=True)
        print_summary(summary)
    elif args.command == "submit":
        parameters = pipeline_parameters(None, args.set)  # the cluster's defaults, not the laptop's
        run_id = submit(
            host=args.host,
            parameters=parameters,
            experiment=args.experiment,
            run_name=args.run_name,
            namespace=args.namespace,
            package=args.package,
        )
        print(f"run {run_id} started on {args.host}")
    else:
        spec = yaml.safe_load(args.spec.read_text())
        print(
            f"recurring run {schedule(host=args.host, spec=spec, namespace=args.namespace, package=args.package)} "
            f"created on {args.host}"
        )


if __name__ == "__main__":
    sys.exit(main())
