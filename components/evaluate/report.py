"""The evaluation report: a sample grid (fixed captions, real vs generated) and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from einops import rearrange
from PIL import Image

METRIC_LABELS = {
    "fid": ("FID", "lower is better"),
    "kid_mean": ("KID", "lower is better; mean over subsets"),
    "kid_std": ("KID std", ""),
    "r_precision": ("R-precision (R@1)", "higher is better; mean over repeats"),
    "r_precision_std": ("R-precision std", "over repeats"),
    "caption_accuracy": ("caption accuracy", "demo shapes: fraction of caption facts found in pixels"),
    "damsm_r_precision": (
        "R-precision, DAMSM (MirrorGAN paper's protocol)",
        "not gated: DAMSM helps train AttnGAN-family models, which biases it toward them",
    ),
    "damsm_r_precision_std": ("DAMSM R-precision std", "over repeats"),
}


def sample_grid(rows: dict[str, np.ndarray], *, pad: int = 2) -> np.ndarray:
    """Rows of uint8 (k, h, w, 3) images (one row per label, same k) -> one uint8 image, white padding."""
    stacked = np.stack(list(rows.values()))  # (rows, k, h, w, 3)
    padded = np.pad(stacked, ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=255)
    return rearrange(padded, "r k h w c -> (r h) (k w) c")


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return "&ndash;"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def render_html(summary: dict, *, grid_png: bytes | None, grid_rows: list[str], grid_captions: list[str]) -> str:
    """One HTML page: metrics per image set (model, baselines, real ceiling; mean ± std over runs), each
    metric's comparability to the paper, provenance, the grid."""
    columns = list(summary["scores"])
    spread, labels = summary["runs"]["std"], summary["paper"]["metrics"]

    def cell(column: str, key: str) -> str:
        std = spread[column].get(key)
        return _cell(summary["scores"][column].get(key)) + (f" &plusmn; {std:.2g}" if std is not None else "")

    def paper_cell(key: str) -> str:
        label = labels.get(key)
        if label is None:
            return "<td></td>"
        verdict = "comparable" if label["comparable"] else "not comparable"
        return f"<td><b>{verdict}</b><br><small>{html.escape(label['why'])}</small></td>"

    metric_rows = "".join(
        f"<tr><th title='{html.escape(hint)}'>{label}</th>"
        + "".join(f"<td>{cell(c, key)}</td>" for c in columns)
        + paper_cell(key)
        + "</tr>"
        for key, (label, hint) in METRIC_LABELS.items()
        if any(key in summary["scores"][c] for c in columns)
    )
    produced = summary["produced_by"]
    seeds = summary["runs"]["seeds"]
    provenance_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in {
            "model": summary["model"]["path"],
            "training run": summary["model"]["provenance"].get("training_run_id"),
            "data version": summary["data_version"],
            "protocol": f"{summary['protocol']}: {len(seeds)} run{'s' * (len(seeds) > 1)}, noise seeds {seeds}",
            "evaluation set": f"{summary['caption_set']['id']} ({summary['caption_set']['size']} pairs, "
            f"{summary['source']}/{summary['split']})",
            "evaluation key": summary["evaluation_key"],
            "FID extractor": f"{produced['extractor']['name']} sha256 {produced['extractor']['weights_sha256'][:16]}, "
            f"resize {produced['extractor']['resize']}",
            "samples": f"{produced['num_generated']} generated at {produced['image_size']} px vs "
            f"{produced['num_real']} real",
            "R-precision encoder": f"{produced['rprecision_encoder']['name']}, "
            f"{produced['rprecision']['candidates']} candidates, {produced['rprecision']['repeats']} repeats",
        }.items()
    )
    grid = ""
    if grid_png is not None:
        encoded = base64.b64encode(grid_png).decode()
        captions = "".join(f"<li>{html.escape(c)}</li>" for c in grid_captions)
        grid = (
            f"<h2>Samples</h2><p>Rows: {html.escape(', '.join(grid_rows))}. Columns: the captions below, in order.</p>"
            f"<img alt='sample grid' src='data:image/png;base64,{encoded}' style='image-rendering:pixelated;"
            f"max-width:100%'><ol>{captions}</ol>"
        )
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Evaluation {html.escape(summary["evaluation_key"])}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}} code{{font-size:.9em}}</style></head>
<body><h1>Evaluation report</h1>
<h2>Metrics</h2><table><tr><th></th>{header}<th>vs the paper</th></tr>{metric_rows}</table>
<p>"real" scores the real images of the caption set: FID/KID of that subset against the whole split,
and the ceiling of R-precision and caption accuracy. With several runs a score is the mean &plusmn; the
standard deviation over runs (the real set is scored once). The paper: {html.escape(summary["paper"]["reference"])}.</p>
<h2>Provenance</h2><table>{provenance_rows}</table>
{grid}
</body></html>
"""
