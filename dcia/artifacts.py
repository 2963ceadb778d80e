"""The compiled DCIA program: where it lives, whether it is fresh, and how to rebuild it.

p4c compiles p4src/dcia.p4 into a BMv2 JSON and a P4Info (text format) in p4src/build/,
beside a stamp recording the SHA-256 of the P4 sources and the p4c version. The files
are committed, so machines without p4c run exactly the program p4c produced.

    dcia p4 check      # exit 2 with a message if the sources changed (`make p4-check`)
    dcia p4 compile    # needs p4c (`make p4`)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dcia.errors import ArtifactError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
P4SRC = REPO / "p4src"
BUILD = P4SRC / "build"
PROGRAM = "dcia"
P4C_SEARCH = ("/opt/p4/bin", "/usr/local/bin", "/usr/bin")


@dataclass(frozen=True)
class Pipeline:
    """The compiled program's files."""

    bmv2_json: Path
    p4info: Path
    stamp: Path

    @classmethod
    def default(cls) -> Pipeline:
        return cls(
            bmv2_json=BUILD / f"{PROGRAM}.json",
            p4info=BUILD / f"{PROGRAM}.p4info.txtpb",
            stamp=BUILD / "stamp.json",
        )


def source_hash(src_dir: Path = P4SRC) -> str:
    """SHA-256 over the names and contents of the P4 sources (*.p4 directly in src_dir)."""
    digest = hashlib.sha256()
    for path in sorted(src_dir.glob("*.p4")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_stamp(pipeline: Pipeline | None = None) -> dict:
    pipeline = pipeline or Pipeline.default()
    try:
        return json.loads(pipeline.stamp.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{pipeline.stamp} is missing: run `make p4` (needs p4c)") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{pipeline.stamp} is not valid JSON ({exc}): run `make p4`") from None


def check_fresh(pipeline: Pipeline | None = None, src_dir: Path = P4SRC) -> dict:
    """Return the stamp if the committed artifacts match the sources; raise otherwise."""
    pipeline = pipeline or Pipeline.default()
    stamp = read_stamp(pipeline)
    if stamp.get("sources_sha256") != source_hash(src_dir):
        raise ArtifactError(
            f"the P4 sources in {src_dir} changed since {pipeline.stamp.parent} was compiled: "
            "run `make p4` (needs p4c) and commit p4src/build/"
        )
    for path in (pipeline.bmv2_json, pipeline.p4info):
        recorded = stamp.get("files", {}).get(path.name)
        if not path.exists():
            raise ArtifactError(f"{path} is missing: run `make p4`")
        if recorded != file_hash(path):
            raise ArtifactError(f"{path} was changed after compilation: run `make p4`")
    return stamp


def find_p4c() -> Path:
    """The p4c BMv2 back end (`p4c-bm2-ss`): $P4C_BM2_SS, PATH, then /opt/p4/bin."""
    explicit = os.environ.get("P4C_BM2_SS")
    candidates = [explicit] if explicit else []
    found = shutil.which("p4c-bm2-ss")
    candidates += [found] if found else []
    candidates += [f"{d}/p4c-bm2-ss" for d in P4C_SEARCH]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ArtifactError(
        "p4c is not installed (no p4c-bm2-ss on PATH, in $P4C_BM2_SS or /opt/p4/bin). "
        "Install p4c with its BMv2 back end (https://github.com/p4lang/p4c, release "
        "v1.2.4.8 builds with Debian 12's abseil) or use the committed p4src/build/."
    )


def compile_program(pipeline: Pipeline | None = None, src_dir: Path = P4SRC) -> dict:
    """Compile dcia.p4 with the real p4c and write the stamp. Returns the stamp."""
    pipeline = pipeline or Pipeline.default()
    p4c = find_p4c()
    probe = subprocess.run([str(p4c), "--version"], capture_output=True, text=True)
    version = next((line.strip() for line in (probe.stdout + probe.stderr).splitlines()
                    if "Version" in line), "unknown version")
    version = f"p4c-bm2-ss {version}"
    pipeline.bmv2_json.parent.mkdir(parents=True, exist_ok=True)
    # Paths relative to the repository, so that the JSON's source references do not
    # depend on where the checkout is.
    def rel(path: Path) -> str:
        return os.path.relpath(path, REPO)

    cmd = [
        str(p4c), "--arch", "v1model", "--std", "p4-16",
        "-o", rel(pipeline.bmv2_json),
        "--p4runtime-files", rel(pipeline.p4info),
        rel(src_dir / f"{PROGRAM}.p4"),
    ]
    log.info("running %s", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise ArtifactError(f"p4c failed:\n{result.stderr.strip()}")
    stamp = {
        "program": f"{PROGRAM}.p4",
        "sources_sha256": source_hash(src_dir),
        "p4c": str(version),
        "command": "p4c-bm2-ss --arch v1model --std p4-16 -o dcia.json "
        "--p4runtime-files dcia.p4info.txtpb dcia.p4",
        "files": {p.name: file_hash(p) for p in (pipeline.bmv2_json, pipeline.p4info)},
    }
    pipeline.stamp.write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp
