"""The pipeline's MirrorGAN branch: compiled (pretraining only under the architecture's condition,
its folder reaching the train step) and run locally end to end on a tiny configuration, ending in
a served endpoint."""

import pytest
import yaml
from PIL import Image
from pipeline_support import TINY_RUN

from pipelines import xmcgan_pipeline as pipeline_module
from pipelines.xmcgan_pipeline import run_local

TINY = {
    **TINY_RUN,
    "preset": "mirrorgan-64",
    "train": {
        "batch_size": 8,
        "total_images": 32,
        "model_overrides": {"base_size": 16, "stages": 2, "g_base": 4, "d_base": 4},
    },
    "pretrain": {
        "damsm": {"image_size": 75, "epochs": 2, "batch_size": 16, "text_dim": 16, "embedding_dim": 16},
        "stream": {
            "vgg_layer": "block1_pool",
            "input_size": 16,
            "epochs": 2,
            "batch_size": 16,
            "embed_dim": 8,
            "hidden_dim": 16,
        },
    },
    "evaluate": {**TINY_RUN["evaluate"], "damsm_rprecision": True},
    "gate": {"max_fid": 10_000.0, "min_rprecision": 0.0},
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    path = pipeline_module.compile_pipeline(tmp_path_factory.mktemp("compiled") / "pipeline.yaml")
    return yaml.safe_load(path.read_text())


def test_pretraining_runs_only_under_the_mirrorgan_condition_and_feeds_the_train_step(compiled):
    root, components = compiled["root"]["dag"]["tasks"], compiled["components"]
    assert root["architecture"]["inputs"]["parameters"]["preset"]["componentInputParameter"] == "preset"
    (group,) = [name for name, task in root.items() if "architecture" in task.get("dependentTasks", [])]
    branches = components[root[group]["componentRef"]["name"]]["dag"]["tasks"]
    contents = {
        task["triggerPolicy"]["condition"]: set(components[task["componentRef"]["name"]]["dag"]["tasks"])
        for task in branches.values()
    }
    mirrorgan = "inputs.parameter_values['pipelinechannel--architecture-Output'] == 'mirrorgan'"
    assert contents == {mirrorgan: {"pretrain"}, f"!({mirrorgan})": {"no-pretraining"}}
    pretrained = root["train"]["inputs"]["parameters"]["pretrained"]["taskOutputParameter"]
    assert pretrained["producerTask"] == group  # dsl.OneOf of the two branches' answers
    assert root["evaluate"]["inputs"]["parameters"]["pretrain"]["componentInputParameter"] == "pretrain"
    assert compiled["root"]["inputDefinitions"]["parameters"]["model_name"]["defaultValue"] == ""


@pytest.mark.slow
def test_mirrorgan_runs_through_the_whole_pipeline_to_a_served_endpoint(tmp_path):
    summary = run_local(parameters=TINY, output=tmp_path)
    run_dir = tmp_path / "pipeline-root" / summary["run_dir"].split("/")[-1]
    assert summary["pretraining"]["damsm_loss"] > 0 and summary["training"]["images_seen"] == 32
    metrics = summary["evaluation"]["metrics"]
    assert 0 <= metrics["damsm_r_precision"] <= 1 and 0 <= metrics["r_precision"] <= 1
    assert summary["gate"]["promote"] is True and summary["registered_version"] == "1"
    deployed = summary["deploy"]
    assert deployed["model_uri"] == "models:/mirrorgan/1"  # the family's own registered model
    image = Image.open(run_dir / "deploy" / "images" / deployed["files"][0])
    assert image.size == (32, 32)
