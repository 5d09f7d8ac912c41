"""Files that readers never see half-written: written under a temporary name beside the target,
then renamed over it (``os.replace`` is atomic on one file system)."""

import os
from typing import Union

__all__ = ["fsync_file", "write_atomic"]


def fsync_file(path: str) -> None:
    """Flush ``path``'s data to disk (before a rename, so that a crash cannot leave the new name
    pointing at an empty file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: Union[bytes, str], durable: bool = False) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` so that readers see the old file or the whole
    new one, never a part. ``durable``: also fsync before the rename. On an error the temporary
    file is removed and ``path`` is left as it was."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
