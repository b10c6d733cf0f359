"""Local files published whole: a write that dies midway leaves the previous file, never a torn one."""

import os

import pytest

from components import atomic


def test_a_write_that_dies_before_its_rename_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "evaluation.json"
    atomic.write_text(target, '{"fid": 1}')
    assert target.read_text() == '{"fid": 1}'

    def die(fd):  # the process dies after writing part of the new file, before it is renamed over the old one
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "fsync", die)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(target, '{"fid": 2, "more": "x"}')
    assert target.read_text() == '{"fid": 1}'
    monkeypatch.undo()
    atomic.write_text(target, '{"fid": 3}')  # the next run replaces it whole, leftovers or not
    assert target.read_text() == '{"fid": 3}'
    atomic.unpublish(target)
    atomic.unpublish(target)  # a marker already gone is fine
    assert not target.exists()
