"""The XMC-GAN pipeline, raw data to a served model, as one Kubeflow pipeline.

    raw-data -> for each source: ingest -> embed -> validate (merge) -> train -> evaluate -> gate
             -> if the gate passes: promote (champion alias) -> deploy (serve + real request)

Commands (`python -m pipelines.xmcgan_pipeline COMMAND --help` for options):
    run-local   run the whole pipeline on this machine (kfp's SubprocessRunner, no cluster)
    compile     write the pipeline YAML for a Kubeflow Pipelines cluster
    submit      compile and start a run on a Kubeflow Pipelines endpoint
    schedule    create a recurring run (cron) for scheduled retraining

Pipeline parameters default to the `pipeline` section of params.yaml; `--set name=value`
overrides one (values are YAML: `--set sources='[coco, ln_coco]'`).
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

from components.deploy.component import deploy
from components.embed.component import embed
from components.evaluate.component import evaluate
from components.ingest.component import ingest
from components.lineage import code_fingerprint
from components.pretrain.component import architecture, no_pretraining, pretrain
from components.promote.component import gate, promote
from components.raw_data.component import raw_data, raw_data_version
from components.train.component import train
from components.validate.component import validate
from model.config import DEMO_PRESET
from model.data import DEFAULT_MAX_LENGTHS

REPO = Path(__file__).resolve().parents[1]
PIPELINE_NAME = "xmcgan"


def cached(task, component_module: str):
    """Let `task` reuse an earlier run's outputs, keyed (besides its inputs and settings) by the
    source of the code it runs: an edited step re-runs, and with it every step after it, since
    its outputs are new. The gate, promote and deploy change the registry and the served model,
    so they always run."""
    task.set_caching_options(True)
    return task.set_env_variable("XMCGAN_CODE_FINGERPRINT", code_fingerprint(component_module))


@dsl.pipeline(
    name=PIPELINE_NAME, description="XMC-GAN text-to-image: data, training, evaluation, gated promotion, serving"
)
def xmcgan_pipeline(
    # raw data: a DVC repository (newest revision by default), a path/URL, or (both empty) the demo dataset
    raw_data_uri: str = "",
    dvc_repo: str = "",
    dvc_rev: str = "",
    demo_train_images: int = 2000,
    demo_val_images: int = 200,
    demo_image_size: int = 128,
    # ingest, embed, validate
    sources: list[str] = ["coco", "ln_coco"],  # noqa: B006 - kfp pipeline defaults are literals
    image_size: int = 32,  # pixels of the ingested records: the preset's image size
    resize: str = "stretch",
    beam_runner: str = "DirectRunner",
    encoder: str = "sentence-transformers/all-MiniLM-L6-v2",
    max_lengths: dict = DEFAULT_MAX_LENGTHS,
    split_min_train: int = 1000,
    split_min_val: int = 100,
    max_dead_letter_fraction: float = 0.01,
    # training (one source per model, as in the paper: COCO captions or Localized Narratives)
    train_source: str = "coco",
    preset: str = DEMO_PRESET,  # architecture and training recipe (model/config.py PRESETS): cpu-64, mirrorgan-64, ...
    train_overrides: dict = {},  # noqa: B006 - TrainConfig fields set explicitly over the preset's recipe
    time_limit_minutes: float = 0.0,  # 0: the preset's image budget alone decides when training ends
    gpus: int = 0,
    runs_root: str = "/runs",
    tracking_uri: str = "",
    experiment: str = "xmcgan",
    # MirrorGAN's pretraining (DAMSM text/image encoders, STREAM captioner): run only for its presets
    damsm: dict = {},  # noqa: B006 - components.pretrain DAMSMConfig fields over the authors' defaults
    stream: dict = {},  # noqa: B006 - STREAMConfig fields
    # evaluation and the gate
    eval_protocol: str = "demo",  # "paper": 30,000 COCO-2014 val samples, mean of 3 runs (evaluate/protocol.py)
    eval_samples: int = 0,  # 0: the protocol's (demo 200, paper 30,000)
    eval_runs: int = 0,  # 0: the protocol's (demo 1, paper 3)
    rprecision_candidates: int = 100,
    rprecision_repeats: int = 10,
    demo_shapes: bool = False,
    untrained_baseline: bool = False,
    damsm_rprecision: bool = False,  # also the MirrorGAN paper's DAMSM R-precision (never gated)
    cache_root: str = "/cache",
    model_name: str = "",  # registered model; empty: the architecture's name ("xmcgan", "mirrorgan")
    max_fid: float = 150.0,
    min_rprecision: float = 0.1,
    min_caption_accuracy: float = 0.0,  # the demo gates on it too (params.yaml); real data has no such check
    fid_tolerance: float = 5.0,
    rprecision_tolerance: float = 0.02,
    # deploy
    deploy_mode: str = "kserve",
    namespace: str = "kubeflow-user",
    serving_image: str = "ghcr.io/xmcgan/xmcgan-serving:0.1.0",
    deploy_prompts: list[str] = [  # noqa: B006
        "a red circle in the top left corner on a white background",
        "a blue square at the bottom on a black background",
    ],
    seed: int = 0,
):
    source_data = dict(raw_data_uri=raw_data_uri, dvc_repo=dvc_repo, dvc_rev=dvc_rev, seed=seed,
                       demo_train_images=demo_train_images, demo_val_images=demo_val_images,
                       demo_image_size=demo_image_size)  # fmt: skip
    version = raw_data_version(**source_data).set_display_name("data version")
    version.set_caching_options(False)
    raw = raw_data(version=version.output, **source_data).set_display_name("raw data")
    cached(raw, "components.raw_data.component")

    with dsl.ParallelFor(sources) as source:
        records = ingest(
            raw=raw.outputs["raw"], source=source, image_size=image_size, resize=resize, runner=beam_runner
        ).set_display_name("ingest")
        cached(records, "components.ingest.component")
        embeddings = embed(
            records=records.outputs["records"],
            source=source,
            encoder=encoder,
            max_lengths=max_lengths,
            runner=beam_runner,
        ).set_display_name("embed")
        cached(embeddings, "components.embed.component")

    checked = validate(
        records=dsl.Collected(records.outputs["records"]),
        embeddings=dsl.Collected(embeddings.outputs["embeddings"]),
        sources=sources,
        split_min_train=split_min_train,
        split_min_val=split_min_val,
        max_dead_letter_fraction=max_dead_letter_fraction,
    ).set_display_name("validate")
    cached(checked, "components.validate.component")

    family = architecture(preset=preset).set_display_name("architecture")
    cached(family, "components.pretrain.component")
    with dsl.If(family.output == "mirrorgan", name="mirrorgan-pretraining"):
        pretrained = pretrain(
            dataset=checked.outputs["dataset"],
            source=train_source,
            preset=preset,
            train_overrides=train_overrides,
            damsm=damsm,
            stream=stream,
            cache_root=cache_root,
            runs_root=runs_root,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            tracking_uri=tracking_uri,
        ).set_display_name("pretrain")
        cached(pretrained, "components.pretrain.component")
    with dsl.Else(name="no-pretraining-needed"):
        none_needed = no_pretraining().set_display_name("no pretraining")
        cached(none_needed, "components.pretrain.component")

    trained = train(
        dataset=checked.outputs["dataset"],
        source=train_source,
        max_lengths=max_lengths,
        preset=preset,
        train_overrides=train_overrides,
        pretrained=dsl.OneOf(pretrained.outputs["Output"], none_needed.output),
        time_limit_minutes=time_limit_minutes,
        gpus=gpus,
        runs_root=runs_root,
        run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        tracking_uri=tracking_uri,
        experiment=experiment,
        seed=seed,
    ).set_display_name("train")
    trained.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus)
    cached(trained, "components.train.component")  # scheduled runs turn caching off (schedule())

    scored = evaluate(
        model=trained.outputs["model"],
        dataset=checked.outputs["dataset"],
        source=train_source,
        protocol=eval_protocol,
        num_samples=eval_samples,
        runs=eval_runs,
        rprecision_candidates=rprecision_candidates,
        rprecision_repeats=rprecision_repeats,
        demo_shapes=demo_shapes,
        untrained_baseline=untrained_baseline,
        damsm_rprecision=damsm_rprecision,
        damsm=damsm,
        cache_root=cache_root,
        seed=seed,
    )
    scored.set_display_name("evaluate")
    cached(scored, "components.evaluate.component")

    decided = gate(
        model=trained.outputs["model"],
        evaluation=scored.outputs["evaluation"],
        model_name=model_name,
        tracking_uri=tracking_uri,
        max_fid=max_fid,
        min_rprecision=min_rprecision,
        min_caption_accuracy=min_caption_accuracy,
        fid_tolerance=fid_tolerance,
        rprecision_tolerance=rprecision_tolerance,
    ).set_display_name("gate")
    decided.set_caching_options(False)

    with dsl.If(decided.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - a kfp condition
        promoted = promote(decision=decided.outputs["decision"], tracking_uri=tracking_uri)
        promoted.set_display_name("promote").set_caching_options(False)
        served = deploy(
            decision=decided.outputs["decision"],
            tracking_uri=tracking_uri,
            mode=deploy_mode,
            namespace=namespace,
            serving_image=serving_image,
            prompts=deploy_prompts,
            seed=seed,
        ).after(promoted)
        served.set_display_name("deploy").set_caching_options(False)


# ---------------------------------------------------------------------------------------------
# Parameters: params.yaml `pipeline` section < --set


def pipeline_parameters(params_file: Path | None, overrides: list[str]) -> dict:
    import inspect

    known = inspect.signature(xmcgan_pipeline.pipeline_func).parameters
    values = {}
    if params_file and params_file.is_file():
        values.update((yaml.safe_load(params_file.read_text()) or {}).get("pipeline") or {})
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects name=value, got {item!r}")
        values[name.replace("-", "_")] = yaml.safe_load(text)
    if unknown := sorted(set(values) - set(known)):
        raise SystemExit(f"unknown pipeline parameters {unknown}; known: {sorted(known)}")
    # YAML reads 1000 as an int; kfp refuses an int for a float parameter
    return {k: float(v) if known[k].annotation is float and isinstance(v, int) else v for k, v in values.items()}


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
        "cache_root": str(output / "cache"),
        "tracking_uri": f"sqlite:///{output / 'mlflow.db'}",
        "deploy_mode": "local",
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
    arguments = {**local_defaults(output), **parameters}
    started = time.time()
    log_dir = output / "logs" / time.strftime("%Y%m%d-%H%M%S")
    root_logger, level = logging.getLogger(), logging.getLogger().level
    root_logger.addHandler(folders)  # kfp logs each cache hit on the root logger, outside its task logging
    root_logger.setLevel(logging.INFO)
    attached = step_console.attach(log_dir, key_figure=lambda step: key_figure(folders, step)) if console else None
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
        self.reused: dict[str, list[Path]] = {}

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
                        if folder not in self.reused.setdefault(step, []):
                            self.reused[step].append(folder)
                        break

    def tasks(self, step: str) -> list[Path]:
        """Every folder of `step` in this run (a step inside a ParallelFor has one per iteration), oldest first."""
        run = self.run_dir()
        own = [p.parent for p in run.rglob(f"{step}/executor_output.json")] if run else []
        finished = lambda folder: (folder / "executor_output.json").stat().st_mtime  # noqa: E731 - written at the end
        return sorted({*own, *self.reused.get(step, [])}, key=finished)

    def task(self, step: str) -> Path | None:
        found = self.tasks(step)
        return found[-1] if found else None


def key_figure(folders: RunFolders, step: str) -> str:
    """The one figure the terminal shows when a step of the running pipeline succeeds."""
    task = folders.task(step)
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
        params=spec.get("parameters") or {},
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
        help="params.yaml whose `pipeline` section gives parameter values",
    )
    parameter_options.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a pipeline parameter (YAML value); repeatable",
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
