"""dcia.secret_files: secrets are never readable by others, not even a replaced file."""

from __future__ import annotations

import stat

import pytest

from dcia.secret_files import write_secret


def test_a_new_or_replaced_secret_is_the_owners_only(tmp_path):
    path = tmp_path / "k"
    path.write_text("old")
    path.chmod(0o644)
    write_secret(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_secret(path, "other", exclusive=True)
    assert path.read_bytes() == b"new"
