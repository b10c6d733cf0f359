"""The deploy step's config: where the champion is served and the request that proves it serves."""

from __future__ import annotations

from dataclasses import dataclass

from model.settings import DictConfig, setting

DEPLOY_MODES = ("kserve", "local")


@dataclass(frozen=True)
class DeployConfig(DictConfig):
    mode: str = setting(
        "kserve", help="kserve: the cluster's InferenceService; local: the KServe server on this machine"
    )
    namespace: str = setting("kubeflow-user", help="Kubernetes namespace of the InferenceService (mode kserve)")
    serving_image: str = setting("ghcr.io/xmcgan/xmcgan-serving:0.1.0", help="predictor image (mode kserve)")
    prompts: tuple[str, ...] = setting(
        (
            "a red circle in the top left corner on a white background",
            "a blue square at the bottom on a black background",
        ),
        help="prompts of the request the deployed server must answer; their images are saved",
    )
    seed: int = setting(0, help="noise seed of those images")

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        problems = []
        if self.mode not in DEPLOY_MODES:
            problems.append(f"mode must be one of {list(DEPLOY_MODES)}, got {self.mode!r}")
        if not self.prompts or not all(isinstance(p, str) and p.strip() for p in self.prompts):
            problems.append(f"prompts must be a non-empty list of non-empty strings, got {list(self.prompts)!r}")
        if problems:
            raise ValueError("invalid deploy config: " + "; ".join(problems))
