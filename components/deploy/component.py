"""kfp component: deploy the champion and prove it serves (a real request, images saved)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy(decision: Input[Artifact], tracking_uri: str, seed: int, settings: dict, images: Output[Artifact]) -> str:
    """Serve the version the gate registered (models:/<name>/<version>); `settings`: DeployConfig
    fields (the pipeline's `deploy` parameter): mode "local" runs the KServe server on this machine,
    "kserve" the cluster's InferenceService. Returns the URL that answered."""
    import json
    from pathlib import Path

    from components.deploy import deploy_kserve, deploy_local
    from components.deploy.config import DeployConfig
    from components.settings import step_config

    config = step_config("deploy", DeployConfig, settings, seed=seed)
    model_name, version = decision.metadata["name"], decision.metadata["version"]
    model_uri = f"models:/{model_name}/{version}"
    request = dict(model_uri=model_uri, tracking_uri=tracking_uri, out=images.path, prompts=list(config.prompts),
                   seed=config.seed)  # fmt: skip
    if config.mode == "local":
        result = deploy_local(model_name=model_name, **request)
    else:
        result = deploy_kserve(namespace=config.namespace, image=config.serving_image, **request)
    (Path(images.path) / "deploy.json").write_text(json.dumps(result, indent=2))
    images.metadata.update({"model_uri": model_uri, "url": result["url"], "mode": config.mode})
    return result["url"]
