"""maskx_d2.atomic_files: a reader sees the old file or the whole new one."""

import os

import pytest

from maskx_d2.atomic_files import write_atomic


def test_write_atomic_writes_text_and_bytes_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "record.json")
    write_atomic(path, '{"a": 1}\n')
    assert open(path).read() == '{"a": 1}\n'
    write_atomic(path, b"\x00\x01", durable=True)
    assert open(path, "rb").read() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["record.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    path = str(tmp_path / "record.json")
    write_atomic(path, "old")
    with pytest.raises(TypeError):
        write_atomic(path, object())  # neither bytes nor text: fails while writing
    assert open(path).read() == "old"
    assert os.listdir(tmp_path) == ["record.json"]
