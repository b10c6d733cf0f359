"""The gate's config: the absolute thresholds and how far below the champion a candidate may score."""

from __future__ import annotations

from dataclasses import dataclass, fields

from model.settings import DictConfig, setting


@dataclass(frozen=True)
class GateConfig(DictConfig):
    max_fid: float = setting(150.0, help="promote only with FID at most this")
    min_rprecision: float = setting(0.1, help="promote only with R-precision (R@1) at least this")
    # On the demo data: floor of the fraction of caption facts the generated pixels confirm
    # (components.demo_data); 0 leaves it ungated (real data has no pixel-checkable facts).
    min_caption_accuracy: float = setting(
        0.0, help="on the demo data, promote only with caption accuracy at least this (0: not gated)"
    )
    fid_tolerance: float = setting(5.0, help="how much worse than the champion's FID the candidate may be")
    rprecision_tolerance: float = setting(0.02, help="how much below the champion's R-precision the candidate may be")
    reevaluate_champion: bool = setting(
        True, help="score the champion on the candidate's evaluation when it has no such scores"
    )

    def __post_init__(self) -> None:
        problems = [
            f"{f.name} must be non-negative, got {getattr(self, f.name)}"
            for f in fields(self)
            if f.type == "float" and not getattr(self, f.name) >= 0
        ]
        for name in ("min_rprecision", "min_caption_accuracy"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if problems:
            raise ValueError("invalid gate config: " + "; ".join(problems))
