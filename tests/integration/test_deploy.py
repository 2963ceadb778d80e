"""Transactional deployment against real switch processes over real gRPC."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import finsy as fy
import pytest

from controller import session
from controller.deployment import Deployment, SwitchAssignment, SwitchEndpoint
from controller.entries import DROP_NAMES, STAT_NAMES
from controller.session import (
    DeploymentError,
    PipelineMismatch,
    PushPolicy,
    SwitchUnreachable,
    connect,
)
from dcia.arithmetic import Activation
from dcia.artifacts import Pipeline
from dcia.layers import DenseLayer, EmbeddingLayer
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port


@pytest.fixture(params=["embedded", "bmv2"])
def switches(request, tmp_path):
    """Two running switches without ports; their P4Runtime endpoints."""
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    procs = []
    try:
        for i in (1, 2):
            config = SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}",
                                  device_id=i, log_file=tmp_path / f"s{i}.log")
            procs.append(SwitchProcess(request.param, config,
                                       stdout_path=tmp_path / f"s{i}.out").start())
        yield [SwitchEndpoint(f"s{i}", p.config.grpc_addr, device_id=i)
               for i, p in enumerate(procs, 1)]
    finally:
        for p in procs:
            p.stop()


def dense(rng, n_in, n_out):
    return DenseLayer([[rng.randint(-128, 127) for _ in range(n_in)] for _ in range(n_out)],
                      [rng.randint(-999, 999) for _ in range(n_out)],
                      [rng.randint(1, 65535) for _ in range(n_out)],
                      [rng.randint(10, 20) for _ in range(n_out)], Activation.RELU)


def two_stage(endpoints, model_id=1, version=1, seed=1):
    rng = random.Random(seed)
    return Deployment(model_id, version, (
        SwitchAssignment(endpoints[0], {1: dense(rng, 16, 16), 2: dense(rng, 16, 16)}),
        SwitchAssignment(endpoints[1], {3: dense(rng, 16, 10)}),
    ))


def read_all(endpoint: SwitchEndpoint) -> set[tuple[str, str, str]]:
    async def work():
        async with connect(endpoint, Pipeline.default()) as sw:
            return {(e.table_id, repr(sorted(e.match.items())), repr(e.action))
                    async for e in sw.read(fy.P4TableEntry())}
    return asyncio.run(work())


def test_deploy_writes_reads_back_and_is_idempotent(switches):
    plan = two_stage(switches)
    reports = asyncio.run(session.apply(plan))
    # s1: 2 layers x (1 + 16 neurons) + 2 version entries; s2: 1 + 10 + 2
    assert [(r.inserted, r.modified, r.deleted) for r in reports] == [(36, 0, 0), (13, 0, 0)]
    assert len(read_all(switches[0])) == 36 and len(read_all(switches[1])) == 13
    again = asyncio.run(session.apply(plan))
    assert [(r.inserted, r.modified, r.deleted) for r in again] == [(0, 0, 0), (0, 0, 0)]


def test_status_reads_layers_and_every_counter(switches):
    asyncio.run(session.apply(two_stage(switches)))
    first, second = (asyncio.run(session.switch_status(e)) for e in switches)
    assert first.error is None and first.models == {(1, 1): [1, 2]}
    assert second.models == {(1, 1): [3]}
    assert first.stats == dict.fromkeys(STAT_NAMES, 0)
    assert first.drops == dict.fromkeys(DROP_NAMES, 0)   # ipv4_drops, by reason
    dead = asyncio.run(session.switch_status(SwitchEndpoint("s9", f"127.0.0.1:{free_tcp_port()}")))
    assert dead.error.startswith("switch s9: no P4Runtime server")


def test_redeploying_changed_weights_modifies_only_what_changed(switches):
    asyncio.run(session.apply(two_stage(switches, seed=1)))
    changed = two_stage(switches, seed=2)
    reports = asyncio.run(session.apply(changed))
    assert reports[0].inserted == reports[0].deleted == 0 and reports[0].modified > 0


def test_undeploy_removes_one_model_and_leaves_the_others(switches):
    asyncio.run(session.apply(two_stage(switches, model_id=1)))
    asyncio.run(session.apply(two_stage(switches, model_id=2)))
    other = read_all(switches[0])
    asyncio.run(session.apply(Deployment(1, 1, tuple(SwitchAssignment(e) for e in switches))))
    left = read_all(switches[0])
    assert len(left) == len(other) // 2
    assert all("('model_id', 2)" in match for _, match, _ in left)


def test_a_failure_midway_restores_every_switch(switches):
    asyncio.run(session.apply(two_stage(switches, model_id=7)))
    before = [read_all(e) for e in switches]
    rng = random.Random(3)
    too_big = EmbeddingLayer({i: [rng.randint(-128, 127) for _ in range(8)] for i in range(5000)},
                             dim=8)   # the embeddings table holds 4096 entries
    plan = Deployment(1, 1, (
        SwitchAssignment(switches[0], {1: dense(rng, 16, 16)}),
        SwitchAssignment(switches[1], {2: too_big}),
    ))
    with pytest.raises(DeploymentError, match="every switch was restored"):
        asyncio.run(session.apply(plan))
    assert [read_all(e) for e in switches] == before


def test_an_unreachable_switch_is_named(switches):
    dead = SwitchEndpoint("s9", f"127.0.0.1:{free_tcp_port()}")
    plan = Deployment(1, 1, (SwitchAssignment(switches[0], {1: dense(random.Random(), 4, 4)}),
                             SwitchAssignment(dead, {2: dense(random.Random(), 4, 4)})))
    with pytest.raises(SwitchUnreachable, match="switch s9: no P4Runtime server"):
        asyncio.run(session.apply(plan))
    assert read_all(switches[0]) == set()   # nothing was written before every switch answered


def test_a_switch_without_the_pipeline_is_refused_under_never(switches):
    with pytest.raises(session.DciaError, match="has no P4 program"):
        asyncio.run(session.apply(two_stage(switches), push=PushPolicy.NEVER))


def test_a_switch_running_another_program_is_refused_and_left_alone(switches):
    """Another P4 program on the switch: PipelineMismatch names the difference; no write."""
    other = Pipeline(bmv2_json=Path("tests/conformance/programs/basic_fwd.json"),
                     p4info=Path("tests/conformance/programs/basic_fwd.p4info.txtpb"),
                     stamp=Path("unused"))

    async def push_other():
        async with connect(switches[0], other, push=PushPolicy.ALWAYS) as sw:
            return {t.name for t in sw.p4info.tables}

    tables = asyncio.run(push_other())
    with pytest.raises(PipelineMismatch, match=r"switch s1 .* runs another P4 program: tables "
                                               r"missing on the switch: DciaIngress\."):
        asyncio.run(session.apply(two_stage(switches)))

    async def still_other():
        async with connect(switches[0], other, push=PushPolicy.NEVER) as sw:
            return {t.name for t in sw.p4info.tables}

    assert asyncio.run(still_other()) == tables
