"""kfp component: deploy the champion and prove it serves (a real request, images saved)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy(
    decision: Input[Artifact],
    tracking_uri: str,
    mode: str,
    namespace: str,
    serving_image: str,
    prompts: list[str],
    seed: int,
    images: Output[Artifact],
) -> str:
    """mode "local": the KServe server on this machine; "kserve": the cluster's InferenceService.
    Serves the version the gate registered (models:/<name>/<version>); returns the URL that answered."""
    import json
    from pathlib import Path

    from components.deploy import deploy_kserve, deploy_local

    model_name, version = decision.metadata["name"], decision.metadata["version"]
    model_uri = f"models:/{model_name}/{version}"
    if mode == "local":
        result = deploy_local(
            model_uri=model_uri,
            tracking_uri=tracking_uri,
            model_name=model_name,
            out=images.path,
            prompts=prompts,
            seed=seed,
        )
    elif mode == "kserve":
        result = deploy_kserve(
            model_uri=model_uri,
            tracking_uri=tracking_uri,
            namespace=namespace,
            image=serving_image,
            out=images.path,
            prompts=prompts,
            seed=seed,
        )
    else:
        raise ValueError(f"deploy mode must be 'local' or 'kserve', got {mode!r}")
    (Path(images.path) / "deploy.json").write_text(json.dumps(result, indent=2))
    images.metadata.update({"model_uri": model_uri, "url": result["url"], "mode": mode})
    return result["url"]
