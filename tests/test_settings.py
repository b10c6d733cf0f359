"""One declaration per setting: a config field carries its help, and the command line, params.yaml
and the Kubeflow pipeline's parameters are all made from it under its own name."""

import dataclasses
import importlib

import pytest
import yaml

import model.training
from components.cli import config_parser, params_section, parse_config
from components.ingest.config import IngestConfig
from components.settings import WIRED, section_settings, step_config, step_defaults
from components.validate.config import ValidateConfig
from model.settings import setting


@pytest.fixture
def extended_train_config(monkeypatch):
    """TrainConfig with one throwaway field, put where every consumer imports it from; the pipeline
    module is rebuilt on it, and rebuilt again on the real config afterwards."""
    import pipelines.xmcgan_pipeline as pipeline_module

    extended = dataclasses.make_dataclass(
        "TrainConfig",
        [("warmup_images", int, setting(500, help="images of the throwaway warm-up"))],
        bases=(model.training.TrainConfig,),
        frozen=True,
    )
    monkeypatch.setattr(model.training, "TrainConfig", extended)
    yield extended, importlib.reload(pipeline_module)
    monkeypatch.undo()
    importlib.reload(pipeline_module)


def test_a_field_added_to_a_step_config_reaches_the_cli_params_yaml_and_the_compiled_pipeline(
    extended_train_config, tmp_path
):
    extended, pipeline_module = extended_train_config
    # the command line: an option with the field's help and default
    parser = config_parser(doc="prog: a step", prog="train", config_class=extended, section="train")
    assert "images of the throwaway warm-up (default: 500)" in " ".join(parser.format_help().split())
    config, _ = parse_config(parser, ["--run-dir", "r", "--data-root", "d", "--warmup-images", "7"])
    assert config.warmup_images == 7
    # params.yaml: the step's section lists it with its default and help (--print-params), and a
    # value set there is what the command line and the pipeline's local run take
    assert yaml.safe_load(params_section(extended, "train"))["train"]["warmup_images"] == 500
    assert "warmup_images: 500  # images of the throwaway warm-up" in params_section(extended, "train")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {"warmup_images": 9}}))
    config, _ = parse_config(parser, ["--params", str(params), "--run-dir", "r", "--data-root", "d"])
    assert config.warmup_images == 9
    assert pipeline_module.pipeline_parameters(params, [])["train"] == {"warmup_images": 9}
    assert pipeline_module.pipeline_parameters(params, ["train.warmup_images=11"])["train"] == {"warmup_images": 11}
    # the compiled pipeline: a key of the train step's parameter, under the same name
    compiled = yaml.safe_load(pipeline_module.compile_pipeline(tmp_path / "pipeline.yaml").read_text())
    assert compiled["root"]["inputDefinitions"]["parameters"]["train"]["defaultValue"]["warmup_images"] == 500


def test_without_the_throwaway_field_the_pipeline_does_not_know_it():
    from pipelines import xmcgan_pipeline as pipeline_module

    with pytest.raises(SystemExit, match="train has no setting 'warmup_images'"):
        pipeline_module.pipeline_parameters(None, ["train.warmup_images=3"])


def test_a_step_dict_may_not_set_what_the_pipeline_wires_and_names_where_it_comes_from():
    with pytest.raises(ValueError, match=r"may not set \['data_root'\]: data_root comes from the merged dataset"):
        step_config("validate", ValidateConfig, {"data_root": "/x"}, data_root="/d", report_dir="/r",
                    sources=("coco",), require_embeddings=True)  # fmt: skip
    with pytest.raises(TypeError, match="WIRED says"):  # a component that wires other fields than WIRED lists
        step_config("validate", ValidateConfig, {}, data_root="/d")
    config = step_config("validate", ValidateConfig, {"max_dead_letter_fraction": 0.2}, data_root="/d",
                         report_dir="/r", sources=["coco"], require_embeddings=True)  # fmt: skip
    assert config.max_dead_letter_fraction == 0.2 and config.require_embeddings == ("coco",)


def test_step_defaults_are_json_and_leave_out_the_wired_and_the_unset_fields():
    defaults = step_defaults("validate", ValidateConfig)
    assert not set(defaults) & set(WIRED["validate"])
    assert "image_size" not in defaults  # None: the size ingest recorded (kfp has no null)
    assert defaults["split_min_images"] == {"train": 1, "val": 1}
    assert step_defaults("ingest", IngestConfig)["beam_args"] == []  # a tuple, as JSON
    section = {"data_root": "data", "image_size": None, "min_caption_chars": 5}  # a DVC path, an unset field
    assert section_settings("validate", ValidateConfig, section) == {"min_caption_chars": 5}
    with pytest.raises(ValueError, match=r"section 'validate': unknown fields \['min_chars'\]"):
        section_settings("validate", ValidateConfig, {"min_chars": 5})


def test_every_setting_of_every_step_has_its_help():
    from components.serve.config import ServeConfig
    from pipelines.xmcgan_pipeline import STEP_CONFIGS

    for config_class in [*STEP_CONFIGS.values(), ServeConfig]:
        for field in dataclasses.fields(config_class):
            if field.metadata.get("option", True):
                assert field.metadata.get("help"), f"{config_class.__name__}.{field.name} has no help"


def test_a_number_yaml_reads_as_text_is_taken_as_that_number_and_other_text_is_refused(tmp_path):
    """PyYAML (YAML 1.1) reads 2e-3 as the string '2e-3'; a params.yaml writing it so means the number."""
    from model.training import TrainConfig

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  d_lr: 2e-3\n  betas: [0, 9.9e-1]\n  total_images: 1000\n")
    assert yaml.safe_load(params.read_text())["train"]["d_lr"] == "2e-3"
    parser = config_parser(doc="train: the test", prog="train", config_class=TrainConfig, section="train")
    config, _ = parse_config(parser, ["--params", str(params), "--run-dir", "run", "--data-root", "data"])
    assert (config.d_lr, config.betas, config.total_images) == (0.002, (0, 0.99), 1000)
    with pytest.raises(ValueError, match=r"g_lr must be a number, got 'fast'"):
        TrainConfig.from_dict({"run_dir": "run", "g_lr": "fast"})
