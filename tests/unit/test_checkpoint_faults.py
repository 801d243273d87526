"""A checkpoint write that fails (disk full, a path that is not a directory) raises one clear
OSError naming the file and leaves the previous checkpoint loadable."""
import errno

import pytest
import torch

from gan_core import checkpoint
from gan_core.checkpoint import STATE_FILE, load_state, save_state


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_state(tmp_path, {"epoch": 1, "w": torch.arange(4.0)})

    def full_disk(obj, f):  # half the bytes reach the disk, then it is full
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError, match=rf"cannot write checkpoint .*{STATE_FILE}: .*No space left"):
        save_state(tmp_path, {"epoch": 2, "w": torch.zeros(4)})
    state = load_state(tmp_path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]  # no partial file left


def test_a_directory_that_cannot_exist_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="Not a directory"):
        save_state(blocker / "ckpt", {"epoch": 1})
    assert blocker.read_text() == "not a directory"
