"""`dcia testbed run` as `make run` runs it, for the system tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def dcia_testbed_run(run_dir: Path, *args: str, timeout: float = 300) -> tuple[int, str, dict]:
    """``dcia testbed run ARGS --free-ports --run-dir RUN_DIR``: its exit status, its output
    and its results.json (empty when it wrote none)."""
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "testbed", "run", "--free-ports",
         "--run-dir", str(run_dir), *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout)
    results = run_dir / "results.json"
    return (proc.returncode, proc.stdout + proc.stderr,
            json.loads(results.read_text()) if results.exists() else {})
