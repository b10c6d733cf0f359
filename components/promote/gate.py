"""The promotion gate: absolute thresholds, then no regression against the champion on the same evaluation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import GateConfig


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]
    candidate: dict
    champion: dict | None
    thresholds: dict

    def to_dict(self) -> dict:
        return asdict(self)


def decide(candidate: dict, champion: dict | None, config: GateConfig) -> Decision:
    """Promote when every check passes.

    candidate: {"fid", "r_precision", "evaluation_key", ...}; champion: the same keys for the current
    champion scored on the same evaluation, plus "version", or None when there is no champion yet.
    A champion scored on a different evaluation (another key) cannot be compared: no promotion.
    """
    checks: list[tuple[bool, str]] = []
    fid, rprecision = candidate["fid"], candidate["r_precision"]
    checks.append(
        (fid <= config.max_fid, f"FID {fid:.4g} {'<=' if fid <= config.max_fid else '>'} {config.max_fid:.4g}")
    )
    checks.append(
        (
            rprecision >= config.min_rprecision,
            f"R-precision {rprecision:.4g} {'>=' if rprecision >= config.min_rprecision else '<'} "
            f"{config.min_rprecision:.4g}",
        )
    )
    if config.min_caption_accuracy > 0:
        accuracy = candidate.get("caption_accuracy")
        if accuracy is None:
            checks.append(
                (False, "caption accuracy is gated but the evaluation has none (was it run with demo_shapes?)")
            )
        else:
            holds = accuracy >= config.min_caption_accuracy
            checks.append(
                (holds, f"caption accuracy {accuracy:.4g} {'>=' if holds else '<'} {config.min_caption_accuracy:.4g}")
            )
    if champion is None:
        checks.append((True, "no champion yet: the first model to pass the thresholds becomes champion"))
    elif champion.get("evaluation_key") != candidate["evaluation_key"]:
        checks.append(
            (
                False,
                f"champion v{champion.get('version')} has no scores on evaluation {candidate['evaluation_key']} "
                f"(it was scored on {champion.get('evaluation_key')}): cannot compare",
            )
        )
    else:
        version = champion.get("version")
        fid_limit = champion["fid"] + config.fid_tolerance
        checks.append(
            (
                fid <= fid_limit,
                f"FID {fid:.4g} vs champion v{version} {champion['fid']:.4g}: "
                f"{'within' if fid <= fid_limit else 'worse than'} tolerance {config.fid_tolerance:.4g}",
            )
        )
        rprecision_limit = champion["r_precision"] - config.rprecision_tolerance
        checks.append(
            (
                rprecision >= rprecision_limit,
                f"R-precision {rprecision:.4g} vs champion v{version} {champion['r_precision']:.4g}: "
                f"{'within' if rprecision >= rprecision_limit else 'worse than'} tolerance "
                f"{config.rprecision_tolerance:.4g}",
            )
        )
    promote = all(ok for ok, _ in checks)
    reasons = [f"{'pass' if ok else 'FAIL'}: {text}" for ok, text in checks]
    return Decision(
        promote=promote, reasons=reasons, candidate=candidate, champion=champion, thresholds=config.to_dict()
    )
