"""The Kubeflow pipeline: the compiled DAG, the cluster requests (client patched), a local run."""

import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines import xmcgan_pipeline as pipeline_module

REPO = Path(__file__).resolve().parents[1]
STEPS = {"raw-data", "ingest", "embed", "validate", "train", "evaluate", "gate", "promote", "deploy"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    path = pipeline_module.compile_pipeline(tmp_path_factory.mktemp("compiled") / "pipeline.yaml")
    return yaml.safe_load(path.read_text())


def _tasks(dag: dict) -> dict:
    return dag["dag"]["tasks"]


def test_compiled_pipeline_parses_into_the_pipeline_spec_schema(compiled):
    spec = json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec())  # unknown fields are rejected
    assert spec.pipeline_info.name == "xmcgan"
    components = set(compiled["components"])
    for name, task in [
        *_tasks(compiled["root"]).items(),
        *(t for c in compiled["components"].values() if "dag" in c for t in _tasks(c).items()),
    ]:
        assert task["componentRef"]["name"] in components, f"task {name} refers to a missing component"


def test_every_step_is_present_and_the_gate_guards_promotion_and_deploy(compiled):
    root_tasks = _tasks(compiled["root"])
    loop = next(t for t in root_tasks.values() if "parameterIterator" in t)
    loop_tasks = _tasks(compiled["components"][loop["componentRef"]["name"]])
    condition_name, condition = next(
        (n, t) for n, t in root_tasks.items() if "gate" in t.get("triggerPolicy", {}).get("condition", "")
    )
    guarded = _tasks(compiled["components"][condition["componentRef"]["name"]])
    branches = next(n for n, t in root_tasks.items() if "architecture" in t.get("dependentTasks", []))
    loop_name = next(n for n, t in root_tasks.items() if t is loop)
    assert set(root_tasks) - {condition_name, loop_name, branches} == {
        "raw-data-version",
        "raw-data",
        "validate",
        "architecture",
        "train",
        "evaluate",
        "gate",
    }
    assert set(loop_tasks) == {"ingest", "embed"}
    assert set(guarded) == {"promote", "deploy"}
    assert "gate" in condition["dependentTasks"]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--gate-Output'] == true"
    promote_input = condition["inputs"]["parameters"]["pipelinechannel--gate-Output"]["taskOutputParameter"]
    assert promote_input == {"outputParameterKey": "Output", "producerTask": "gate"}
    assert set(root_tasks) | set(loop_tasks) | set(guarded) >= STEPS
    assert guarded["deploy"]["dependentTasks"] == ["promote"]


def test_steps_reuse_cached_outputs_keyed_by_their_code_except_the_registry_and_serving(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    tasks = {**_tasks(compiled["root"])}
    for component in compiled["components"].values():
        tasks.update(_tasks(component) if "dag" in component else {})
    for name, task in tasks.items():
        if "componentRef" not in task or task["componentRef"]["name"].startswith("comp-for-loop"):
            continue
        if task["componentRef"]["name"].startswith("comp-condition"):
            continue
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        executor = executors[f"exec-{task['componentRef']['name'].removeprefix('comp-')}"]["container"]
        env = {e["name"]: e["value"] for e in executor.get("env", [])}
        if name in ("raw-data-version", "gate", "promote", "deploy"):
            assert not cached, name  # the data's newest version, the registry and the server: always asked anew
        else:
            assert cached and len(env["XMCGAN_CODE_FINGERPRINT"]) == 16, name


def test_artifacts_are_typed(compiled):
    def outputs(component: str) -> dict:
        definition = compiled["components"][f"comp-{component}"]["outputDefinitions"]["artifacts"]
        return {name: spec["artifactType"]["schemaTitle"] for name, spec in definition.items()}

    assert outputs("raw-data") == {"raw": "system.Dataset"}
    assert outputs("ingest") == {"records": "system.Dataset", "metrics": "system.Metrics"}
    assert outputs("validate") == {"dataset": "system.Dataset", "report": "system.HTML", "metrics": "system.Metrics"}
    assert outputs("train") == {"model": "system.Model", "metrics": "system.Metrics"}
    assert outputs("evaluate") == {
        "evaluation": "system.Artifact",
        "report": "system.HTML",
        "metrics": "system.Metrics",
    }
    inputs = compiled["components"]["comp-validate"]["inputDefinitions"]["artifacts"]
    assert inputs["records"]["isArtifactList"] and inputs["records"]["artifactType"]["schemaTitle"] == "system.Dataset"


def test_training_asks_the_cluster_for_the_gpus_it_runs_processes_on(compiled):
    executor = compiled["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert executor["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert "gpus" in executor["resources"]["accelerator"]["resourceCount"]
    assert executor["image"].endswith("xmcgan:latest")


def test_kfp_cli_compiles_the_same_pipeline(tmp_path, compiled):
    out = tmp_path / "cli.yaml"
    kfp_cli = Path(sys.executable).with_name("kfp")
    result = subprocess.run(
        [
            str(kfp_cli),
            "dsl",
            "compile",
            "--py",
            str(REPO / "pipelines" / "xmcgan_pipeline.py"),
            "--function",
            "xmcgan_pipeline",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert yaml.safe_load(out.read_text())["root"] == compiled["root"]


def test_parameters_come_from_the_step_sections_of_params_yaml_and_set(tmp_path):
    params = tmp_path / "params.yaml"
    sections = {
        "pipeline": {"preset": "cpu-64"},
        "train": {"run_dir": "runs/x", "g_lr": 1e-3, "total_images": 100},  # run_dir: the pipeline's own
        "evaluate": {"num_samples": 50, "cache_dir": "data/cache"},
    }
    params.write_text(yaml.safe_dump(sections))
    values = pipeline_module.pipeline_parameters(params, ["evaluate.num_samples=20", "sources=[coco]", "seed=3"])
    assert values == {
        "preset": "cpu-64",
        "train": {"g_lr": 1e-3, "total_images": 100},
        "evaluate": {"num_samples": 20},
        "sources": ["coco"],
        "seed": 3,
    }
    with pytest.raises(SystemExit, match="unknown pipeline parameters"):
        pipeline_module.pipeline_parameters(params, ["epochs=3"])
    with pytest.raises(SystemExit, match=r"train\.epochs: train has no setting 'epochs'"):
        pipeline_module.pipeline_parameters(params, ["train.epochs=3"])
    with pytest.raises(SystemExit, match=r"train\.seed: the pipeline sets seed from the pipeline's `seed`"):
        pipeline_module.pipeline_parameters(params, ["train.seed=3"])
    params.write_text(yaml.safe_dump({"train": {"epochs": 3}}))
    with pytest.raises(SystemExit, match=r"section 'train': unknown fields \['epochs'\]"):
        pipeline_module.pipeline_parameters(params, [])


def test_the_compiled_parameters_are_the_step_configs_fields_by_their_names(compiled):
    """One dict parameter per step, named after its params.yaml section; its default lists the
    step config's fields (less the wired ones and the unset ones) under the config's own names."""
    import dataclasses

    from components.settings import WIRED

    parameters = compiled["root"]["inputDefinitions"]["parameters"]
    for step, config_class in pipeline_module.STEP_CONFIGS.items():
        names = {f.name for f in dataclasses.fields(config_class) if f.metadata.get("option", True)}
        default = parameters[step]["defaultValue"]
        assert set(default) <= names - set(WIRED[step]), step
        unset = {f.name for f in dataclasses.fields(config_class) if f.default is None}
        assert set(default) | unset >= names - set(WIRED[step]), step
    # the shared parameters that are settings of a step carry the field's name (not train_source, cache_root, ...)
    shared = set(parameters) - set(pipeline_module.STEP_CONFIGS)
    pipeline_only = {"raw_data_uri", "dvc_repo", "dvc_rev", "gpus", "runs_root", "tracking_uri", "experiment"}
    config_fields = {f.name for c in pipeline_module.STEP_CONFIGS.values() for f in dataclasses.fields(c)}
    assert shared - pipeline_only - {"model_name"} <= config_fields
    assert {"sources", "source", "preset", "seed", "cache_dir"} <= shared


def _patched_client():
    import kfp
    from kfp_server_api import ExperimentServiceApi, RecurringRunServiceApi, RunServiceApi

    experiment = mock.Mock(experiment_id="exp-1")
    return [
        mock.patch.object(kfp.Client, "get_kfp_healthz", return_value=mock.Mock(multi_user=False)),
        mock.patch.object(kfp.Client, "get_user_namespace", return_value=None),
        mock.patch.object(kfp.Client, "get_experiment", return_value=experiment),
        mock.patch.object(
            RecurringRunServiceApi,
            "recurring_run_service_create_recurring_run",
            return_value=mock.Mock(recurring_run_id="rr-1"),
        ),
        mock.patch.object(RunServiceApi, "run_service_create_run", return_value=mock.Mock(run_id="run-1")),
        mock.patch.object(ExperimentServiceApi, "experiment_service_create_experiment", return_value=experiment),
    ]


def test_recurring_run_request_carries_the_schedule_and_parameters(tmp_path):
    from contextlib import ExitStack

    from kfp_server_api import RecurringRunServiceApi

    spec = yaml.safe_load((REPO / "manifests" / "recurring-run.yaml").read_text())
    with ExitStack() as stack:
        for patch in _patched_client():
            stack.enter_context(patch)
        recurring_id = pipeline_module.schedule(
            host="http://kfp.invalid", spec=spec, namespace=None, package=tmp_path / "pipeline.yaml"
        )
        request = RecurringRunServiceApi.recurring_run_service_create_recurring_run.call_args.kwargs["recurring_run"]
    assert recurring_id == "rr-1"
    assert request.trigger.cron_schedule.cron == "0 0 2 * * *"
    assert request.max_concurrency == 1 and request.no_catchup is True and request.mode == "ENABLE"
    assert request.experiment_id == "exp-1" and request.service_account == "xmcgan-deployer"
    assert request.runtime_config.parameters["dvc_repo"] == spec["parameters"]["dvc_repo"]
    assert request.runtime_config.parameters["dvc_rev"] == ""  # newest data version at every run
    assert request.pipeline_spec["pipelineInfo"]["name"] == "xmcgan"
    with pytest.raises(ValueError, match="six fields"):
        pipeline_module.schedule(
            host="h", spec={**spec, "cron": "0 2 * * *"}, namespace=None, package=tmp_path / "p.yaml"
        )


def test_submit_sends_the_compiled_pipeline_with_its_arguments(tmp_path):
    from contextlib import ExitStack

    from kfp_server_api import RunServiceApi

    with ExitStack() as stack:
        for patch in _patched_client():
            stack.enter_context(patch)
        run_id = pipeline_module.submit(
            host="http://kfp.invalid",
            parameters={"gpus": 8, "preset": "xmcgan-128"},
            experiment="xmcgan",
            run_name="nightly",
            namespace=None,
            package=tmp_path / "pipeline.yaml",
        )
        request = RunServiceApi.run_service_create_run.call_args.kwargs["run"]
    assert run_id == "run-1" and request.display_name == "nightly"
    assert request.runtime_config.parameters == {"gpus": 8, "preset": "xmcgan-128"}
    assert json.dumps(request.pipeline_spec).count("comp-train") >= 1


def test_the_evaluation_protocol_is_a_setting_of_the_evaluate_step(compiled):
    """`evaluate: {protocol: paper}` on a cluster run scores by the paper's protocol (unset samples and runs: its)."""
    parameters = compiled["root"]["inputDefinitions"]["parameters"]
    assert parameters["evaluate"]["defaultValue"]["protocol"] == "demo"
    assert not {"num_samples", "runs"} & set(parameters["evaluate"]["defaultValue"])  # None: the protocol's
    task = compiled["root"]["dag"]["tasks"]["evaluate"]["inputs"]["parameters"]
    assert task["settings"]["componentInputParameter"] == "evaluate"
