"""The committed compiled program matches its sources, and staleness is caught."""

import shutil

import pytest

from dcia import artifacts
from dcia.artifacts import Pipeline
from dcia.errors import ArtifactError


def test_committed_artifacts_match_the_p4_sources():
    try:
        stamp = artifacts.check_fresh()
    except ArtifactError as exc:
        pytest.fail(f"{exc}")
    assert stamp["p4c"], "the stamp records the p4c version"


@pytest.fixture
def copy_of_p4src(tmp_path):
    src = tmp_path / "p4src"
    shutil.copytree(artifacts.P4SRC, src)
    build = src / "build"
    return src, Pipeline(build / "dcia.json", build / "dcia.p4info.txtpb", build / "stamp.json")


def test_an_edited_source_is_reported_with_the_fix(copy_of_p4src):
    src, pipeline = copy_of_p4src
    artifacts.check_fresh(pipeline, src)
    with open(src / "dcia.p4", "a") as f:
        f.write("\n// an edit\n")
    with pytest.raises(ArtifactError, match="run `make p4`"):
        artifacts.check_fresh(pipeline, src)


def test_an_edited_artifact_is_reported(copy_of_p4src):
    src, pipeline = copy_of_p4src
    pipeline.p4info.write_text(pipeline.p4info.read_text() + "\n")
    with pytest.raises(ArtifactError, match="changed after compilation"):
        artifacts.check_fresh(pipeline, src)


def test_a_missing_stamp_is_reported(copy_of_p4src):
    src, pipeline = copy_of_p4src
    pipeline.stamp.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        artifacts.check_fresh(pipeline, src)
