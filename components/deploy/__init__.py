"""Deploy the champion: on this machine (start the KServe server, ask it for images, stop it) or
on a cluster (point the InferenceService at the new model version and wait until it is Ready)."""

from .run import MANIFEST, deploy_kserve, deploy_local, inference_service, request_images

__all__ = ["MANIFEST", "deploy_kserve", "deploy_local", "inference_service", "request_images"]
