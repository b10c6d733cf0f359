"""Scale: wall time and peak memory of the data stages at growing dataset sizes, and their extrapolation.

For each size N a synthetic set is written by the demo data generator (components.demo_data, with
params.yaml's `demo` settings: 128 px JPEGs, 5 COCO-style captions and one narrative per image; N train
images and N/10 val images, the demo's ratio). Then each stage runs as its own subprocess through the
project's real entry points, so its wall time and peak memory are its own:

    ingest coco          python -m components.ingest --params params.yaml --sources '[coco]'  (dvc's ingest@coco)
    ingest ln_coco       python -m components.ingest --params params.yaml --sources '[ln_coco]'
    embed coco           python -m components.embed --params params.yaml --sources '[coco]'   (17 tokens)
    embed ln_coco        python -m components.embed --params params.yaml --sources '[ln_coco]'  (64 tokens)
    prepare_arrays       model.training_data.prepare_arrays of the coco train split (what training runs first)
    eval real features   the evaluation's real-image statistics of the coco train split: read_split,
                         real_split_features (Inception features of every real image, streamed from the
                         record files in bounded chunks, through cached_real_features), fid_kid_scores
                         (FID/KID of the caption set's real images against them)

The evaluation normally scores the val split; it runs on the train split here so that it sees N images
(its cost per image does not depend on the split). Memory: the peak resident set of the stage's
process tree, sampled from /proc every 0.2 s (RSS, and its anonymous part: what the process holds,
without the file pages of memory-mapped outputs and libraries), and the kernel's own peak RSS of the
child (ru_maxrss from wait4). A linear fit per stage (wall = a + b * items) extrapolates to COCO-2014
(82,783 train images, 414,113 captions) and LN-Open Images (~500k images, one narrative each).
The load average is printed before and after: on a shared machine the wall times are only as quiet
as it was.

    python benchmarks/bench_scale.py [--sizes 2000,5000,20000] [--work DIR] [--keep] [--json OUT]

The default sizes take hours on 2 CPU cores (the Inception features run at about 5 images/s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.cli import load_params  # noqa: E402  (light: yaml only; heavy imports stay in the stages)

SAMPLE_EVERY_S = 0.2
KILLED_ATTEMPTS = 2  # runs of a stage when the first is killed from outside
# What the extrapolation scales to, in each stage's unit (images or captions).
COCO_2014 = {"images": 82_783, "captions": 414_113}  # captions_train2014.json
LN_OPEN_IMAGES = {"images": 500_000, "captions": 500_000}  # ~1 narrative per image (507k for 504k train images)


@dataclass(frozen=True)
class Stage:
    name: str
    unit: str  # what `items` counts: images or captions
    targets: tuple[str, ...]  # which datasets it extrapolates to: "coco" and/or "ln_open_images"
    needs: tuple[str, ...] = ()  # stages whose outputs it reads


STAGES = (
    Stage("ingest coco", "images", ("coco",)),
    Stage("ingest ln_coco", "images", ("ln_open_images",)),  # the narratives' parsing; the image work is the same
    Stage("embed coco", "captions", ("coco",), needs=("ingest coco",)),
    Stage("embed ln_coco", "captions", ("ln_open_images",), needs=("ingest ln_coco",)),  # 64 tokens, as LN-OI
    Stage("prepare_arrays", "images", ("coco", "ln_open_images"), needs=("ingest coco", "embed coco")),
    Stage("eval real features", "images", ("coco", "ln_open_images"), needs=("ingest coco",)),
)
SPECS = {s.name: s for s in STAGES}
TARGETS = {"coco": ("COCO-2014", COCO_2014), "ln_open_images": ("LN-Open Images", LN_OPEN_IMAGES)}


# ---------------------------------------------------------------------------------------------
# The two stages without a command line of their own, run in the child (`--stage NAME`).


def run_prepare_arrays(data_root: Path, scratch: Path, params: Path, image_size: int, encoder: str) -> dict:
    """Training's first step: the coco train split as memory-mapped arrays (model/training.py calls it so)."""
    from model.training_data import TrainingArrays, prepare_arrays

    embed = load_params(params, "embed")
    folder = prepare_arrays(
        data_root=data_root,
        sources=("coco",),
        split="train",
        encoder_name=encoder,
        max_lengths=embed["max_lengths"],
        image_size=image_size,
        cache_dir=scratch / "arrays",
    )
    arrays = TrainingArrays.load(folder)
    return {"images": len(arrays), "captions": len(arrays.captions)}


def run_eval_real_features(data_root: Path, scratch: Path, params: Path, image_size: int, encoder: str) -> dict:
    """The real-image half of evaluate() (components/evaluate/run.py), its own functions in its order:
    the split's records (ids and captions; images left in the files), the caption set, the extractor, the
    split's Inception features streamed from the record files at the generator's resolution
    (real_split_features, a miss in this fresh cache), and FID/KID of the set's real images against them."""
    from components.evaluate.config import EvalConfig
    from components.evaluate.data import read_split, rows_of
    from components.evaluate.fidelity import create_extractor
    from components.evaluate.run import caption_set_for, fid_kid_scores, real_split_features

    records = read_split(data_root, "coco", "train")
    # the evaluation's default caption set (the demo protocol's), or the whole split at the test's tiny sizes
    samples = min(EvalConfig().num_samples, len(records))
    config = EvalConfig(source="coco", split="train", cache_dir=str(scratch / "eval-cache"), num_samples=samples)
    caption_set = caption_set_for(config, records, data_version="bench-scale")
    set_rows = rows_of(caption_set, records)
    extractor = create_extractor(config.extractor, weights=config.extractor_weights, resize=config.resize)
    split_fields = {"data_version": "bench-scale", "source": config.source, "split": config.split}
    real_features, seconds = real_split_features(
        records.images, (image_size, image_size), extractor, config, key_fields=split_fields, log=lambda _: None
    )
    scores = fid_kid_scores({"real": None}, real_features, set_rows, extractor, config)
    return {"images": len(records), "fid_real_vs_split": round(scores["real"]["fid"], 3),
            "real_features_seconds": seconds}  # fmt: skip


CHILD_STAGES = {"prepare_arrays": run_prepare_arrays, "eval real features": run_eval_real_features}


# ---------------------------------------------------------------------------------------------
# Measuring one subprocess: wall time, peak RSS of its process tree, the kernel's ru_maxrss.


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # gone meanwhile
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def tree_memory_kib(root: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) in KiB summed over `root` and its descendants."""
    parents, tree, rss, anon = _parents(), {root}, 0, 0
    grew = True
    while grew:  # descendants of descendants (Beam's process mode, torch's workers)
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        rss += int(fields.get("VmRSS", "0 kB").split()[0])
        anon += int(fields.get("RssAnon", "0 kB").split()[0])
    return rss, anon


def measure(command: list[str], *, log_dir: Path, name: str) -> dict:
    """Run `command` to its end; its stdout (the stage's JSON summary) is parsed, stderr kept in a log.
    A run killed by a signal from outside (a shared machine) is run again, from scratch: every stage
    publishes atomically, so a second run is what an uninterrupted one would have been."""
    slug = name.replace(" ", "_")
    out_path, err_path = log_dir / f"{slug}.stdout", log_dir / f"{slug}.stderr"
    for attempt in range(1, KILLED_ATTEMPTS + 1):
        started = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            child = subprocess.Popen(
                command, cwd=REPO, stdout=out, stderr=err, env=child_environment(), preexec_fn=first_to_go
            )
            peak_rss = peak_anon = 0
            while True:
                # wait4, not Popen.wait: it also gives the child's rusage, whose ru_maxrss is the kernel's peak
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                rss, anon = tree_memory_kib(child.pid)
                peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
                time.sleep(SAMPLE_EVERY_S)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        if child.returncode != -signal.SIGTERM or attempt == KILLED_ATTEMPTS:  # SIGKILL: the kernel's OOM killer
            break
        print(f"{name}: killed by signal {-child.returncode} after {wall:.0f} s, running it again", file=sys.stderr)
    if child.returncode != 0:
        tail = err_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{name} failed (exit {child.returncode}): {' '.join(command)}\n{tail}")
    return {
        "wall_s": wall,
        # CPU seconds of the child and its waited-for descendants: on a shared machine, what the work cost
        # (wall time also holds the waits for the other users' processes)
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": max(peak_rss, usage.ru_maxrss) / 1024,  # ru_maxrss: KiB on Linux
        "peak_anon_mib": peak_anon / 1024,
        "attempts": attempt,
        "summary": json.loads(out_path.read_text()),
    }


def first_to_go() -> None:
    """In the child: should memory run out on this shared machine, the kernel kills the measured stage first,
    not another user's process."""
    Path("/proc/self/oom_score_adj").write_text("1000")


def available_mib() -> float:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return int(meminfo["MemAvailable"].split()[0]) / 1024


def predicted_anon_mib(stage: str, size: int, done: list[dict]) -> float | None:
    """The stage's peak anonymous memory at `size` from its smaller sizes measured so far (a line through
    two or more, proportional from one), or None before any."""
    mine = [r for r in done if r["stage"] == stage and "skipped" not in r]
    if not mine:
        return None
    if len({r["size"] for r in mine}) < 2:
        return mine[-1]["peak_anon_mib"] * size / mine[-1]["size"]
    a, b = fit([(r["size"], r["peak_anon_mib"]) for r in mine])
    return a + b * size


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"), ("DO_NOT_TRACK", "true")):
        env.setdefault(key, value)
    return env


# ---------------------------------------------------------------------------------------------
# One size: the synthetic set, then every stage in pipeline order.


def stage_command(stage: str, *, raw: Path, processed: Path, scratch: Path, args) -> list[str]:
    py, params = sys.executable, str(args.params)
    if stage.startswith("ingest "):
        source = stage.split()[1]
        return [py, "-m", "components.ingest", "--params", params, "--input-root", str(raw),
                "--output-root", str(processed), "--sources", f"[{source}]"]  # fmt: skip
    if stage.startswith("embed "):
        source = stage.split()[1]
        return [py, "-m", "components.embed", "--params", params, "--data-root", str(processed),
                "--sources", f"[{source}]", "--encoder", args.encoder]  # fmt: skip
    return [py, __file__, "--stage", stage, "--data-root", str(processed), "--work", str(scratch),
            "--params", params, "--image-size", str(args.image_size), "--encoder", args.encoder]  # fmt: skip


def items_of(stage: str, summary: dict) -> int:
    """What the stage processed, from its own summary: images written, captions embedded, images prepared."""
    if stage.startswith("ingest "):
        return summary["images"]["written"]
    if stage.startswith("embed "):
        return summary["captions"]
    return summary["images"]


def measure_size(size: int, args, stages: list[str], done: list[dict]) -> list[dict]:
    from components.demo_data import DemoDataConfig, write_demo_dataset

    folder = args.work / f"n{size}"
    shutil.rmtree(folder, ignore_errors=True)
    raw, processed, logs = folder / "raw", folder / "processed", folder / "logs"
    logs.mkdir(parents=True)
    demo = {k: v for k, v in load_params(args.params, "demo").items() if k not in ("out", "train_images", "val_images")}
    clock = time.perf_counter()
    write_demo_dataset(DemoDataConfig(out=raw, train_images=size, val_images=max(1, size // 10), **demo))
    print(f"n={size}: demo data written in {time.perf_counter() - clock:.1f} s", file=sys.stderr)
    rows, skipped = [], set()
    for stage in stages:
        unit = SPECS[stage].unit
        # A stage whose memory grows with the data could exhaust this shared machine: judged before it runs
        predicted, available = predicted_anon_mib(stage, size, done), available_mib()
        reason = None
        if blocked := [need for need in SPECS[stage].needs if need in skipped]:
            reason = f"needs {', '.join(blocked)}"
        elif predicted is not None and predicted > args.memory_fraction * available:
            reason = f"predicted {predicted:,.0f} MiB > {args.memory_fraction:.0%} of {available:,.0f} MiB available"
        if reason:
            skipped.add(stage)
            rows.append({"stage": stage, "size": size, "unit": unit, "skipped": reason})
            print(f"n={size}: {stage} skipped: {reason}", file=sys.stderr)
            continue
        command = stage_command(stage, raw=raw, processed=processed, scratch=folder, args=args)
        result = measure(command, log_dir=logs, name=stage)
        row = {
            "stage": stage,
            "size": size,
            "items": items_of(stage, result["summary"]),
            "unit": unit,
            "wall_s": round(result["wall_s"], 2),
            "cpu_s": round(result["cpu_s"], 2),
            "peak_rss_mib": round(result["peak_rss_mib"], 1),
            "peak_anon_mib": round(result["peak_anon_mib"], 1),
            "load_1min": round(os.getloadavg()[0], 2),
            "attempts": result["attempts"],
        }
        rows.append(row)
        print(f"n={size}: {json.dumps(row)}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Figures: the measured table, then a linear fit per stage and its extrapolation.


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y = a + b x."""
    n = len(points)
    mean_x, mean_y = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return mean_y - slope * mean_x, slope


def extrapolate(rows: list[dict], stages: list[str]) -> list[dict]:
    """Per stage: fixed cost and cost per 1k items (wall, CPU, anonymous memory) of a line through its sizes,
    how far from linear the cost per item is, and the line at each target dataset."""
    fits = []
    for stage in stages:
        mine = sorted((r for r in rows if r["stage"] == stage and "skipped" not in r), key=lambda r: r["items"])
        if len({r["items"] for r in mine}) < 2:
            continue
        line = {key: fit([(r["items"], r[key]) for r in mine]) for key in ("wall_s", "cpu_s", "peak_anon_mib")}
        spec = SPECS[stage]
        entry = {
            "stage": stage,
            "unit": spec.unit,
            **{f"fixed_{key}": round(a, 1) for key, (a, _) in line.items()},
            **{f"{key}_per_1k": round(1000 * b, 2) for key, (_, b) in line.items()},
            # cost per item at the largest size over that at the smallest: 1 is linear, below 1 the fixed cost
            # amortising, above 1 worse than linear
            **{f"per_item_ratio_{key}": per_item_ratio(mine, key) for key in ("wall_s", "cpu_s")},
            # the same for the part that grows: (t3 - t2) / (n3 - n2) over (t2 - t1) / (n2 - n1)
            "marginal_ratio_cpu_s": marginal_ratio(mine, "cpu_s"),
        }
        for target in spec.targets:
            label, counts = TARGETS[target]
            n = counts[spec.unit]
            at = {key: a + b * n for key, (a, b) in line.items()}
            entry[label] = {"items": n, "wall_h": round(at["wall_s"] / 3600, 2), "cpu_h": round(at["cpu_s"] / 3600, 2),
                            "anon_gib": round(at["peak_anon_mib"] / 1024, 2)}  # fmt: skip
        fits.append(entry)
    return fits


def per_item_ratio(rows: list[dict], key: str) -> float:
    smallest, largest = rows[0], rows[-1]
    return round((largest[key] / largest["items"]) / (smallest[key] / smallest["items"]), 3)


def marginal_ratio(rows: list[dict], key: str) -> float | None:
    if len(rows) < 3:
        return None
    (n1, t1), (n2, t2), (n3, t3) = [(r["items"], r[key]) for r in (rows[0], rows[-2], rows[-1])]
    if n2 == n1 or n3 == n2 or t2 <= t1:
        return None
    return round(((t3 - t2) / (n3 - n2)) / ((t2 - t1) / (n2 - n1)), 3)


def markdown(rows: list[dict], fits: list[dict]) -> str:
    lines = [
        "| stage | images | items | wall s | CPU s | CPU s / 1k items | peak RSS MiB | peak anon MiB | load, 1 min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['stage']} | {r['size']:,} | skipped: {r['skipped']} | | | | | | |")
            continue
        lines.append(
            f"| {r['stage']} | {r['size']:,} | {r['items']:,} {r['unit']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{1000 * r['cpu_s'] / r['items']:.2f} | {r['peak_rss_mib']:.0f} | {r['peak_anon_mib']:.0f} | "
            f"{r['load_1min']:.1f} |"
        )
    if fits:
        lines += [
            "",
            "| stage (line a + b x) | fixed: wall s, CPU s | per 1k items: wall s, CPU s, anon MiB | "
            "cost per item, largest / smallest size: CPU (wall) | marginal CPU ratio | "
            "COCO-2014: wall h (CPU h), anon GiB | LN-Open Images: wall h (CPU h), anon GiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in fits:
            cells = []
            for label in ("COCO-2014", "LN-Open Images"):
                e = f.get(label)
                cells.append(
                    f"{e['items']:,} {f['unit']}: {e['wall_h']:.2f} h ({e['cpu_h']:.2f}), {e['anon_gib']:.1f} GiB"
                    if e
                    else "-"
                )
            marginal = "" if f["marginal_ratio_cpu_s"] is None else f"{f['marginal_ratio_cpu_s']:.2f}"
            lines.append(
                f"| {f['stage']} | {f['fixed_wall_s']:.0f}, {f['fixed_cpu_s']:.0f} | "
                f"{f['wall_s_per_1k']:.1f}, {f['cpu_s_per_1k']:.1f}, {f['peak_anon_mib_per_1k']:.1f} | "
                f"{f['per_item_ratio_cpu_s']:.2f} ({f['per_item_ratio_wall_s']:.2f}) | {marginal} | "
                f"{cells[0]} | {cells[1]} |"
            )
    return "\n".join(lines)


def load_line(label: str, load: tuple[float, float, float]) -> str:
    return f"load average (1, 5, 15 min) {label}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,5000,20000", help="train images of each synthetic set")
    parser.add_argument("--stages", default=",".join(s.name for s in STAGES), help="stages to run, in order")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument(
        "--image-size", type=int, help="training/evaluation resolution (default: params.yaml ingest.image_size)"
    )
    parser.add_argument("--encoder", help="text encoder, hub name or folder (default: params.yaml embed.encoder)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--keep", action="store_true", help="keep each size's data under --work")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--memory-fraction", type=float, default=0.8,
        help="skip a stage whose peak memory, fitted from the smaller sizes, would pass this share of the available",
    )  # fmt: skip
    parser.add_argument("--stage", choices=sorted(CHILD_STAGES), help=argparse.SUPPRESS)  # the child's side
    parser.add_argument("--data-root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.params = args.params.resolve()
    args.image_size = args.image_size or load_params(args.params, "ingest")["image_size"]
    args.encoder = args.encoder or load_params(args.params, "embed")["encoder"]
    if args.stage:
        summary = CHILD_STAGES[args.stage](args.data_root, args.work, args.params, args.image_size, args.encoder)
        print(json.dumps(summary))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    stages = [s.strip() for s in args.stages.split(",")]
    if unknown := set(stages) - set(SPECS):
        raise SystemExit(f"unknown stages {sorted(unknown)}; known: {list(SPECS)}")
    if missing := {need for stage in stages for need in SPECS[stage].needs} - set(stages):
        raise SystemExit(f"the stages read the outputs of {sorted(missing)}: run those too")
    temporary = args.work is None
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))).resolve()
    load_before = os.getloadavg()
    try:
        rows = []
        for size in sizes:
            rows += measure_size(size, args, stages, rows)
    finally:
        if temporary:
            shutil.rmtree(args.work, ignore_errors=True)
    load_after = os.getloadavg()
    rows.sort(key=lambda r: (stages.index(r["stage"]), r["size"]))
    fits = extrapolate(rows, stages)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(markdown(rows, fits))
    print(f"{load_line('before', load_before)}; {load_line('after', load_after)}; "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}")  # fmt: skip
    if args.json:
        figures = {"rows": rows, "fits": fits, "load": [load_before, load_after], "omp_threads": threads}
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
