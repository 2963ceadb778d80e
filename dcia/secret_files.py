"""Files only their owner may read: private keys and secrets, written so from the start.

    write_secret(Path("keys/ops.key"), pem)                   # replaces an older one
    write_secret(Path("keys/t.toml"), text, exclusive=True)   # FileExistsError if there

The file is created with mode 0600 (never readable by others, not even for a moment), and
an existing file it replaces is set to 0600 before anything is written into it.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_secret(path: Path, data: bytes | str, *, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path``, readable and writable by its owner only; with
    ``exclusive``, FileExistsError when ``path`` exists."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    return Path(path)
