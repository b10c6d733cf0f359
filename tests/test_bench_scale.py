"""benchmarks/bench_scale.py for real at tiny sizes: every stage a subprocess through its entry point, one row of
positive figures per stage and size, and a fit per stage."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = (6, 12)
# ingest and embed of ln_coco take the same command paths as coco's (their source is the one difference)
STAGES = ("ingest coco", "embed coco", "prepare_arrays", "eval real features")


def test_bench_scale_measures_every_stage_at_every_size(tmp_path, tiny_encoder):
    figures = tmp_path / "figures.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--sizes", ",".join(map(str, SIZES)),
               "--stages", ",".join(STAGES), "--encoder", tiny_encoder, "--image-size", "32",
               "--work", str(tmp_path / "w"), "--json", str(figures)]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=900
    )  # a hang guard: 300 s was reached under load
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(figures.read_text())
    rows = data["rows"]
    assert sorted((r["stage"], r["size"]) for r in rows) == sorted((s, n) for s in STAGES for n in SIZES)
    for r in rows:
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and r["peak_rss_mib"] > 0 and r["peak_anon_mib"] > 0, r
        # what each stage processed: every train image (+ the val split's N/10, at least 1), 5 captions each
        images = r["size"] + (max(1, r["size"] // 10) if r["stage"].startswith(("ingest", "embed")) else 0)
        assert r["items"] == (5 * images if r["unit"] == "captions" else images), r
    assert [f["stage"] for f in data["fits"]] == list(STAGES)
    for f in data["fits"]:  # at 6 and 12 images a line's slope is noise: check the figures exist and are finite
        assert f["per_item_ratio_cpu_s"] > 0, f
        coco = f["COCO-2014"]
        assert coco["items"] > 0 and all(math.isfinite(coco[key]) for key in ("wall_h", "cpu_h", "anon_gib")), f
    # the printed table: a row per stage and size, a fit row per stage, and the load average
    for stage in STAGES:
        assert sum(line.startswith(f"| {stage} |") for line in result.stdout.splitlines()) == len(SIZES) + 1
    assert "load average (1, 5, 15 min) before" in result.stdout
    assert not (tmp_path / "w" / f"n{SIZES[0]}").exists()  # each size's data removed (no --keep)
