"""Evaluation protocols by name, and whether a score can be set beside the paper's.

"demo" is what the pipeline gates on: 200 samples, one run, minutes on 2 CPU cores. "paper" is
XMC-GAN's COCO protocol (Zhang et al., CVPR 2021): 30,000 images generated from COCO-2014 val
captions, FID by the TF FID Inception on a TF 1.x bilinear resize to 299 x 299 against the
statistics of the real val images, here as the mean and spread of 3 runs (3 seeds of the
generation noise, the same captions).

A number is comparable to the paper's only when everything that moves it is the paper's; the
label of every reported metric says which, and when not, why not. The checks use what the
evaluation measured (the samples generated, the extractor built, the records read), not the
config's intent: a pinned caption set or an overridden sample count shows up as what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fidelity import TF_INCEPTION

DEMO, PAPER = "demo", "paper"


@dataclass(frozen=True)
class Protocol:
    num_samples: int  # generated images, one per (image, caption) pair of the caption set
    runs: int  # generations of the same caption set with consecutive noise seeds; scores are their mean


PROTOCOLS = {DEMO: Protocol(num_samples=200, runs=1), PAPER: Protocol(num_samples=30_000, runs=3)}

COCO_2014_VAL_IMAGES = 40_504
COCO_2014_VAL_PREFIX = "COCO_val2014_"  # the file names of COCO-2014 val, as ingest keeps them
PAPER_REFERENCE = (
    "XMC-GAN (Zhang et al., CVPR 2021), COCO-2014 val: FID 9.33 (their 256 x 256 model, 30,000 samples), "
    "R-precision 71.0 % (their own dual encoder)"
)
# Metrics with no counterpart in the paper, whatever the protocol.
_KID = "the paper reports no KID"
_RPRECISION = "the paper ranks captions with its own image-text dual encoder (not released); this is another encoder"
_DAMSM = "MirrorGAN's DAMSM protocol; the XMC-GAN paper reports R-precision by its own dual encoder"
NOT_IN_PAPER = {
    "kid_mean": _KID,
    "kid_std": _KID,
    "r_precision": _RPRECISION,
    "r_precision_std": _RPRECISION,
    "caption_accuracy": "a check of the demo data's captions; the paper has none",
    "damsm_r_precision": _DAMSM,
    "damsm_r_precision_std": _DAMSM,
}


def fid_differences(
    *,
    protocol: str,
    num_generated: int,
    extractor: str,
    packaged_weights: bool,
    resize: str,
    source: str,
    split: str,
    demo_shapes: bool,
    num_real: int,
    coco_2014_val_files: bool,
) -> list[str]:
    """Every way this evaluation's FID differs from the paper's protocol (empty: comparable)."""
    differences = []
    if protocol != PAPER:
        differences.append(f"protocol {protocol!r}, not {PAPER!r}")
    if num_generated != PROTOCOLS[PAPER].num_samples:
        differences.append(f"{num_generated:,} generated samples, not the paper's {PROTOCOLS[PAPER].num_samples:,}")
    if extractor != TF_INCEPTION:
        differences.append(f"extractor {extractor}, not the TF FID Inception ({TF_INCEPTION})")
    elif not packaged_weights:
        differences.append("TF FID Inception weights from a file given here, not the packaged inception-2015-12-05")
    if resize != "tf1-bilinear":
        differences.append(f"resize {resize}, not TF 1.x bilinear")
    if demo_shapes:
        differences.append("the demo shapes data, not COCO-2014 val")
    if (source, split) != ("coco", "val"):
        differences.append(f"scored on {source}/{split}, not COCO-2014 val")
    elif not coco_2014_val_files:
        differences.append(f"the records are not COCO-2014 val images (file names not {COCO_2014_VAL_PREFIX}*)")
    if num_real != COCO_2014_VAL_IMAGES:
        differences.append(f"real statistics of {num_real:,} images, not COCO-2014 val's {COCO_2014_VAL_IMAGES:,}")
    return differences


def paper_labels(metrics: list[str], *, runs: int, **facts) -> dict:
    """{"protocol", "reference", "metrics": {metric: {"comparable", "why"}}} for the reported `metrics`;
    `facts` are `fid_differences`'s arguments."""
    differences = fid_differences(**facts)
    if differences:
        fid = {"comparable": False, "why": "; ".join(differences)}
    else:
        fid = {
            "comparable": True,
            "why": f"the paper's protocol: {PROTOCOLS[PAPER].num_samples:,} samples of COCO-2014 val captions, "
            f"TF FID Inception, TF 1.x bilinear resize, statistics of the {COCO_2014_VAL_IMAGES:,} real val images"
            + (f"; mean of {runs} runs" if runs > 1 else "; one run"),
        }
    labels = {
        metric: fid if metric == "fid" else {"comparable": False, "why": NOT_IN_PAPER[metric]} for metric in metrics
    }
    return {"protocol": facts["protocol"], "reference": PAPER_REFERENCE, "metrics": labels}
