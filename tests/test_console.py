"""The terminal of a local run: one line per step, right for a ParallelFor's tasks that run at once."""

import io

from pipelines import console as console_module
from pipelines.console import StepConsole


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_tasks_of_one_step_get_their_own_time_figure_and_log(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(console_module.time, "perf_counter", clock)
    terminal = io.StringIO()
    figures = {("ingest", 0): "coco: 10 images", ("ingest", 1): "ln_coco: 10 images"}
    console = StepConsole(terminal, tmp_path, key_figure=lambda step, index: figures.get((step, index), ""))
    console.write("10:00 - INFO - Executing task 'ingest'\n")
    clock.now = 100.5
    console.write("10:00 - INFO - Executing task 'ingest'\n")
    console.write("a line of the second ingest\n")
    clock.now = 104.0
    console.write("10:00 - INFO - Task 'ingest' finished with status SUCCESS\n")
    console.write("a later line of the second ingest\n")
    clock.now = 105.0
    console.write("10:00 - INFO - Task 'ingest' finished with status SUCCESS\n")
    console.write("10:00 - INFO - Task 'embed' cache hit (key=abc)\n")
    console.close()
    lines = [line.split() for line in terminal.getvalue().splitlines()]
    assert lines == [
        ["ok", "ingest", "4.0", "s", "coco:", "10", "images"],  # the first to start ended first: 104.0 - 100.0
        ["ok", "ingest", "4.5", "s", "ln_coco:", "10", "images"],  # 105.0 - 100.5
        ["ok", "embed", "cached"],
    ]
    assert (tmp_path / "ingest-2.log").read_text().splitlines() == [
        "a line of the second ingest",
        "a later line of the second ingest",
    ]
    assert "Task 'ingest' finished" in (tmp_path / "pipeline.log").read_text()


def test_a_reused_step_shows_each_tasks_own_figure_in_the_order_this_run_reused_them(tmp_path):
    """Two cached tasks of a ParallelFor: the n-th cached line is the n-th task reused now, whatever the
    order the earlier run made them in (that order once gave both lines the second task's figure)."""
    import json
    import os

    from pipelines.xmcgan_pipeline import RunFolders, key_figure

    cache = tmp_path / "kfp-cache"
    cache.mkdir()
    made = {}
    for key, captions, made_at in (("aaa", 2200, 1_000.0), ("bbb", 11000, 2_000.0)):
        task = tmp_path / "earlier-run" / f"embed-{key}"
        task.mkdir(parents=True)
        metrics = {"uri": str(task / "metrics"), "metadata": {"captions": captions}}
        (task / "executor_output.json").write_text(json.dumps({"artifacts": {"metrics": {"artifacts": [metrics]}}}))
        os.utime(task / "executor_output.json", (made_at, made_at))
        (cache / f"{key}0123.json").write_text(json.dumps({"metrics": {"artifacts": [{"uri": str(task / "metrics")}]}}))
        made[key] = task
    folders = RunFolders(tmp_path / "pipeline-root", cache)
    folders.reuse("embed", "bbb")  # this run reuses the later-made task first
    assert key_figure(folders, "embed", 0) == "11000 captions"
    folders.reuse("embed", "aaa")
    assert folders.tasks("embed") == [made["bbb"], made["aaa"]]
    assert key_figure(folders, "embed", 1) == "2200 captions"
