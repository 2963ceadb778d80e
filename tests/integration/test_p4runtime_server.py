"""The embedded switch's P4Runtime server, driven by real gRPC clients over loopback.

Each test starts a `Switch` and its server on 127.0.0.1 (a free port), pushes the
`p4rt_features` test program (tests/unit/p4runtime/programs) and speaks P4Runtime to
it: with the raw client of tests/p4rt_client.py (a bare `P4RuntimeStub`, messages built
by finsy's schema, so names rather than ids), and once with finsy's own `Switch` client.
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
from pathlib import Path

import finsy as fy
import grpc
import pytest
from finsy.p4entity import P4Replica
from finsy.proto import p4i, p4r

from controller.entries import STAT_NAMES
from embedded_switch.p4runtime.server import P4RUNTIME_API_VERSION, serve
from embedded_switch.p4runtime.status import Code
from embedded_switch.ports import PortSet
from embedded_switch.switch import Switch
from tests.p4rt_client import (
    CPU_PORT,
    DEVICE_ID,
    Action,
    Client,
    batch_errors,
    observed,
    rpc_error,
    running_bmv2,
    update_codes,
)

PROGRAM = Path(__file__).resolve().parents[1] / "unit" / "p4runtime" / "programs"
P4INFO = PROGRAM / "p4rt_features.p4info.txtpb"
BMV2_JSON = PROGRAM / "p4rt_features.json"

pytestmark = pytest.mark.skipif(
    not (P4INFO.exists() and BMV2_JSON.exists()),
    reason="p4rt_features is not compiled (run p4c as its header says)",
)

INSERT = p4r.Update.INSERT


# -- a client for the test program ----------------------------------------------------


def features_client(port: int) -> Client:
    """A raw P4Runtime client (tests/p4rt_client.py) for the p4rt_features program."""
    return Client(port, P4INFO, BMV2_JSON)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def switch():
    return Switch(device_id=DEVICE_ID, cpu_port=CPU_PORT)


@pytest.fixture
def server(switch):
    server = serve(switch, PortSet(switch, {}), "127.0.0.1:0", device_id=DEVICE_ID)
    yield server
    server.stop(grace=None)


@pytest.fixture
def client(server):
    """The primary controller, with the program pushed."""
    c = features_client(server.port)
    c.connect(election_id=10).next("arbitration")
    c.set_pipeline()
    yield c
    c.close()


@pytest.fixture
def bare(server):
    """A client with no stream and no pipeline pushed."""
    c = features_client(server.port)
    yield c
    c.close()


def acl_entry(mac=0x0A0000000001, mask=0xFFFFFFFFFFFF, priority=10, action="acl_drop", **extra):
    return fy.P4TableEntry(
        "acl",
        match=fy.P4TableMatch(dst_addr=(mac, mask)),
        action=fy.P4TableAction(action),
        priority=priority,
        **extra,
    )


def l2_entry(mac=0x0A0000000001, port=3):
    return fy.P4TableEntry(
        "l2",
        match=fy.P4TableMatch(dst_addr=mac),
        action=fy.P4TableAction("set_egress", port=port),
    )


def default_entry(table: str, action: str | None = None) -> fy.P4TableEntry:
    action = fy.P4TableAction(action) if action else None
    return fy.P4TableEntry(table, action=action, is_default_action=True)


# -- capabilities and pipeline ----------------------------------------------------------


def test_capabilities_report_the_api_version(bare):
    reply = bare.stub.Capabilities(p4r.CapabilitiesRequest())
    assert reply.p4runtime_api_version == P4RUNTIME_API_VERSION
    error = rpc_error(bare.stub.Capabilities, p4r.CapabilitiesRequest(device_id=99))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_a_second_server_on_a_port_in_use_is_refused(server):
    with pytest.raises(OSError, match="cannot listen"):
        serve(Switch(), None, f"127.0.0.1:{server.port}", device_id=DEVICE_ID)


def test_pipeline_is_read_back_in_every_response_type(bare):
    Get = p4r.GetForwardingPipelineConfigRequest
    error = rpc_error(bare.stub.GetForwardingPipelineConfig, Get(device_id=DEVICE_ID))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    bare.set_pipeline(cookie=42)

    def get(kind):
        request = Get(device_id=DEVICE_ID, response_type=kind)
        return bare.stub.GetForwardingPipelineConfig(request).config

    full = get(Get.ALL)
    assert full.p4info == bare.schema.p4info
    assert full.p4_device_config == BMV2_JSON.read_bytes()
    assert full.cookie.cookie == 42
    cookie = get(Get.COOKIE_ONLY)
    assert cookie.cookie.cookie == 42
    assert not cookie.HasField("p4info") and not cookie.p4_device_config
    assert get(Get.P4INFO_AND_COOKIE).HasField("p4info")
    assert not get(Get.P4INFO_AND_COOKIE).p4_device_config
    device = get(Get.DEVICE_CONFIG_AND_COOKIE)
    assert device.p4_device_config and not device.HasField("p4info")


def test_verify_changes_nothing_and_save_then_commit_installs(bare):
    bare.set_pipeline(Action.VERIFY)
    assert rpc_error(bare.write, +l2_entry()).code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_error(bare.set_pipeline, Action.COMMIT).code() == grpc.StatusCode.NOT_FOUND
    bare.set_pipeline(Action.VERIFY_AND_SAVE)
    bare.set_pipeline(Action.COMMIT)
    bare.write(+l2_entry())
    assert len(bare.read(fy.P4TableEntry("l2"))) == 1


def test_reconcile_with_the_same_program_keeps_entries_and_commit_clears_them(bare):
    bare.set_pipeline()
    bare.write(+l2_entry())
    bare.set_pipeline(Action.RECONCILE_AND_COMMIT, cookie=7)
    assert len(bare.read(fy.P4TableEntry("l2"))) == 1
    bare.set_pipeline(Action.VERIFY_AND_COMMIT)
    assert bare.read(fy.P4TableEntry("l2")) == []


def test_reconcile_with_a_changed_program_carries_the_state_over(client):
    client.write(
        +l2_entry(),
        +acl_entry(counter_data=fy.P4CounterData(packet_count=3, byte_count=30)),
        fy.P4CounterEntry("port_counter", index=1, data=fy.P4CounterData(packet_count=2)),
        +fy.P4MulticastGroupEntry(1, replicas=[(1, 0)]),
        ~fy.P4TableEntry("l2", action=fy.P4TableAction("send_to_cpu"), is_default_action=True),
    )
    state = [
        fy.P4TableEntry(counter_data=fy.P4CounterData()),
        fy.P4TableEntry("l2", is_default_action=True),
        fy.P4CounterEntry("port_counter", index=1),
        fy.P4MulticastGroupEntry(),
    ]
    before = client.read(*state)
    program = json.loads(BMV2_JSON.read_bytes())
    l2 = next(t for p in program["pipelines"] for t in p["tables"] if t["name"].endswith(".l2"))
    l2["max_size"] = 300
    bigger_l2 = json.dumps(program).encode()
    client.set_pipeline(Action.RECONCILE_AND_COMMIT, device_config=bigger_l2)
    assert client.read(*state) == before

    renumbered = fy.P4Schema(P4INFO).p4info  # valid, but the saved entries' table ids are gone
    for table in renumbered.tables:
        table.preamble.id += 1
    for direct in (*renumbered.direct_counters, *renumbered.direct_meters):
        direct.direct_table_id += 1
    for profile in renumbered.action_profiles:
        profile.table_ids[:] = [t + 1 for t in profile.table_ids]
    error = rpc_error(
        client.set_pipeline, Action.RECONCILE_AND_COMMIT, p4info=renumbered, device_config=bigger_l2
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot be kept" in error.details()
    assert client.read(*state) == before


def test_a_p4info_that_disagrees_with_the_json_is_refused_with_the_reason(bare):
    p4info = fy.P4Schema(P4INFO).p4info
    action = next(a for a in p4info.actions if a.preamble.name.endswith("set_egress"))
    action.params[0].bitwidth = 16
    error = rpc_error(bare.set_pipeline, p4info=p4info)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "set_egress" in error.details() and "16 bits" in error.details()

    # An action the JSON lacks is not a disagreement BMv2 refuses: the pipeline loads and
    # no entry can use the action (tests/conformance/test_once_refused.py).
    p4info = fy.P4Schema(P4INFO).p4info
    p4info.actions[0].preamble.name = "Ingress.no_such_action"
    bare.set_pipeline(Action.VERIFY, p4info=p4info)

    error = rpc_error(bare.set_pipeline, device_config=b"{not json")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_objects_p4c_left_out_of_the_json_load_and_refuse_what_names_them(bare):
    """p4c puts in the P4Info, and leaves out of the JSON, unused action profiles and
    digests and tables it folds away; it gives some keys other widths in the two. BMv2
    loads such a pair (p4c samples action_selector_unused, issue430-1,
    gauntlet_nested_switch, issue2283_1) and refuses what names the missing object."""
    p4info = fy.P4Schema(P4INFO).p4info
    p4info.tables.add().preamble.MergeFrom(p4i.Preamble(id=0x02FF0001, name="Ingress.folded"))
    p4info.action_profiles.add(preamble=p4i.Preamble(id=0x11FF0001, name="Ingress.unused_as"),
                               with_selector=True, size=16)
    digest = p4info.digests.add(preamble=p4i.Preamble(id=0x18FF0001, name="unused_digest"))
    digest.type_spec.bitstring.bit.bitwidth = 48
    routes = next(t for t in p4info.tables if t.preamble.name.endswith("routes"))
    routes.match_fields[0].bitwidth = 16  # 32 in the JSON: no entry can match on it
    bare.connect(election_id=10).next("arbitration")
    bare.set_pipeline(p4info=p4info)

    absent = [
        p4r.Entity(table_entry=p4r.TableEntry(table_id=0x02FF0001)),
        p4r.Entity(action_profile_member=p4r.ActionProfileMember(action_profile_id=0x11FF0001)),
        p4r.Entity(digest_entry=p4r.DigestEntry(
            digest_id=0x18FF0001, config=p4r.DigestEntry.Config(max_list_size=1))),
    ]
    for entity in absent:
        error = rpc_error(bare.write, p4r.Update(type=INSERT, entity=entity))
        assert update_codes(error) == [Code.NOT_FOUND], entity
        error = rpc_error(bare.read_raw, entity)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "is not in the BMv2 JSON (p4c left it out" in error.details()
    route = p4r.TableEntry(table_id=routes.preamble.id, match=[p4r.FieldMatch(
        field_id=routes.match_fields[0].id, lpm=p4r.FieldMatch.LPM(value=b"\x0a\x00", prefix_len=8))])
    error = rpc_error(bare.write, p4r.Update(type=INSERT, entity=p4r.Entity(table_entry=route)))
    assert update_codes(error) == [Code.INVALID_ARGUMENT]
    assert "no entry can match on it" in batch_errors(error)[0].message

    wildcards = bare.read_raw(p4r.Entity(table_entry=p4r.TableEntry()),
                              p4r.Entity(action_profile_member=p4r.ActionProfileMember()),
                              p4r.Entity(digest_entry=p4r.DigestEntry()))
    assert all(e.table_entry.table_id != 0x02FF0001 for e in wildcards)
    assert not any(e.HasField("action_profile_member") or e.HasField("digest_entry") for e in wildcards)


def test_requests_for_another_device_are_not_found(client):
    assert rpc_error(client.write, +l2_entry(), device_id=7).code() == grpc.StatusCode.NOT_FOUND
    request = p4r.ReadRequest(device_id=7, entities=[p4r.Entity(table_entry=p4r.TableEntry())])
    assert rpc_error(lambda: list(client.stub.Read(request))).code() == grpc.StatusCode.NOT_FOUND


# -- table entries ----------------------------------------------------------------------


def test_entries_are_inserted_read_back_modified_and_deleted(client):
    entry = fy.P4TableEntry(
        "acl",
        match=fy.P4TableMatch(dst_addr=(0x0A0000000001, 0xFFFFFFFFFFFF), ttl=(1, 10), protocol=6),
        action=fy.P4TableAction("acl_to_cpu"),
        priority=7,
        metadata=b"cookie",
    )
    client.write(+entry)
    [read] = client.read(fy.P4TableEntry("acl"))
    assert read.match == entry.match and read.priority == 7 and read.metadata == b"cookie"
    assert read.action.name.endswith("acl_to_cpu")

    permit = fy.P4TableAction("acl_permit")
    client.write(~fy.P4TableEntry("acl", match=entry.match, action=permit, priority=7))
    [read] = client.read(fy.P4TableEntry("acl"))
    assert read.action.name.endswith("acl_permit")

    client.write(-fy.P4TableEntry("acl", match=entry.match, priority=7))
    assert client.read(fy.P4TableEntry("acl")) == []


def test_omitted_fields_are_wildcards_and_priorities_keep_entries_apart(client):
    client.write(
        +fy.P4TableEntry("acl", action=fy.P4TableAction("acl_drop"), priority=1),
        +fy.P4TableEntry("acl", action=fy.P4TableAction("acl_permit"), priority=2),
    )
    entries = client.read(fy.P4TableEntry("acl"))
    assert sorted(e.priority for e in entries) == [1, 2]
    assert all(not e.match for e in entries)
    assert len(client.read(fy.P4TableEntry("acl", priority=2))) == 1


def test_duplicate_insert_is_already_exists_and_missing_delete_is_not_found(client):
    client.write(+l2_entry())
    assert update_codes(rpc_error(client.write, +l2_entry())) == [Code.ALREADY_EXISTS]
    assert update_codes(rpc_error(client.write, -l2_entry(mac=0x0B))) == [Code.NOT_FOUND]
    assert update_codes(rpc_error(client.write, ~l2_entry(mac=0x0B))) == [Code.NOT_FOUND]


def raw_l2(schema: fy.P4Schema, mac: bytes, port: bytes = b"\x01") -> p4r.Update:
    """INSERT into `l2` with the key and parameter bytestrings exactly as given."""
    entry = l2_entry().encode(schema).table_entry
    entry.match[0].exact.value = mac
    entry.action.action.params[0].value = port
    return p4r.Update(type=INSERT, entity=p4r.Entity(table_entry=entry))


def test_values_wider_than_their_field_are_invalid_argument(client):
    too_wide_mac = b"\x01" + b"\x00" * 6  # 49 bits in a 48-bit field
    too_wide_port = b"\x02\x00"  # 10 bits in a bit<9> parameter
    updates = [raw_l2(client.schema, too_wide_mac), raw_l2(client.schema, b"\x0a", too_wide_port)]
    codes = update_codes(rpc_error(client.write, *updates))
    assert codes == [Code.INVALID_ARGUMENT, Code.INVALID_ARGUMENT]


def test_non_canonical_leading_zeros_are_accepted_and_read_back_canonical(client):
    client.write(raw_l2(client.schema, b"\x00\x00\x00\x00\x00\x00\x00\x0a", b"\x00\x03"))
    l2_id = client.schema.tables["l2"].id
    [entity] = client.read_raw(p4r.Entity(table_entry=p4r.TableEntry(table_id=l2_id)))
    assert entity.table_entry.match[0].exact.value == b"\x0a"
    assert entity.table_entry.action.action.params[0].value == b"\x03"


def test_lpm_values_with_bits_past_the_prefix_are_invalid_argument(client):
    bad = fy.P4TableEntry(
        "routes",
        match=fy.P4TableMatch(dst_addr="10.0.0.0/8"),
        action=fy.P4TableAction("route", port=1),
    ).encode(client.schema)
    bad.table_entry.match[0].lpm.value = bytes([10, 0, 0, 1])
    codes = update_codes(rpc_error(client.write, p4r.Update(type=INSERT, entity=bad)))
    assert codes == [Code.INVALID_ARGUMENT]


def test_priority_must_be_set_exactly_where_the_spec_says(client):
    assert update_codes(rpc_error(client.write, +acl_entry(priority=0))) == [Code.INVALID_ARGUMENT]
    routed = fy.P4TableEntry(
        "routes",
        match=fy.P4TableMatch(dst_addr="10.0.0.0/8"),
        action=fy.P4TableAction("route", port=1),
        priority=5,
    )
    assert update_codes(rpc_error(client.write, +routed)) == [Code.INVALID_ARGUMENT]


def test_default_entry_is_modified_reset_and_read_but_never_inserted(client):
    default = fy.P4TableEntry("l2", is_default_action=True)
    client.write(~default_entry("l2", "send_to_cpu"))
    [read] = client.read(default)
    assert read.is_default_action and read.action.name.endswith("send_to_cpu")
    client.write(~fy.P4TableEntry("l2", is_default_action=True))
    [read] = client.read(default)
    assert read.action.name.endswith("NoAction")
    insert = +fy.P4TableEntry("l2", action=fy.P4TableAction("drop"), is_default_action=True)
    assert update_codes(rpc_error(client.write, insert)) == [Code.INVALID_ARGUMENT]


def test_const_tables_refuse_writes_and_list_their_entries(client):
    const_default = ~default_entry("ethertypes", "NoAction")
    assert update_codes(rpc_error(client.write, const_default)) == [Code.PERMISSION_DENIED]
    insert = +fy.P4TableEntry(
        "ethertypes",
        match=fy.P4TableMatch(ether_type=0x0800),
        action=fy.P4TableAction("NoAction"),
    )
    assert update_codes(rpc_error(client.write, insert)) == [Code.PERMISSION_DENIED]
    entries = client.read(fy.P4TableEntry("ethertypes"))
    assert sorted(e.match["ether_type"] for e in entries) == [0x0806, 0x86DD]
    assert all(e.is_const for e in entries)


def test_wildcard_read_of_all_tables_returns_every_entry(client):
    client.write(+l2_entry(), +acl_entry())
    tables = {e.table_id for e in client.read(fy.P4TableEntry())}
    assert {"l2", "acl", "ethertypes"} <= {t.split(".")[-1] for t in tables}


# -- batches and atomicity --------------------------------------------------------------


def test_continue_on_error_applies_the_good_updates(client):
    codes = update_codes(rpc_error(client.write, +l2_entry(1), +l2_entry(1), +l2_entry(2)))
    assert codes == [Code.OK, Code.ALREADY_EXISTS, Code.OK]
    assert len(client.read(fy.P4TableEntry("l2"))) == 2


@pytest.mark.parametrize(
    "atomicity", [p4r.WriteRequest.ROLLBACK_ON_ERROR, p4r.WriteRequest.DATAPLANE_ATOMIC]
)
def test_an_atomic_batch_with_one_bad_update_changes_nothing(client, atomicity):
    def set_egress(port: int) -> fy.P4TableAction:
        return fy.P4TableAction("set_egress", port=port)

    def one(member_id: int) -> fy.P4Member:
        return fy.P4Member(member_id, weight=1)

    def ecmp(dst: int, action) -> fy.P4TableEntry:
        return fy.P4TableEntry("ecmp", match=fy.P4TableMatch(dst_addr=dst), action=action)

    client.write(
        +l2_entry(1, port=1),
        +acl_entry(counter_data=fy.P4CounterData(packet_count=7, byte_count=70)),
        fy.P4CounterEntry("port_counter", index=3, data=fy.P4CounterData(packet_count=5)),
        +fy.P4ActionProfileMember("ecmp_selector", member_id=1, action=set_egress(1)),
        +fy.P4MulticastGroupEntry(1, replicas=[(1, 0)]),
    )
    client.write(+ecmp(1, fy.P4IndirectAction([1 * set_egress(4), 1 * set_egress(5)])))
    everything = [
        fy.P4TableEntry(counter_data=fy.P4CounterData()),
        fy.P4TableEntry("l2", is_default_action=True),
        fy.P4CounterEntry("port_counter", index=3),
        fy.P4ActionProfileMember(),
        fy.P4ActionProfileGroup(),
        fy.P4MulticastGroupEntry(),
        fy.P4RegisterEntry("scratch", index=0),
        fy.P4MeterEntry("port_meter", index=0),
    ]
    before = client.read(*everything)
    slow = fy.P4MeterConfig(cir=1, cburst=1, pir=2, pburst=2)
    batch = [
        ~l2_entry(1, port=9),
        -acl_entry(),
        +l2_entry(2),
        ~fy.P4TableEntry("l2", action=fy.P4TableAction("drop"), is_default_action=True),
        fy.P4CounterEntry("port_counter", index=3, data=fy.P4CounterData(packet_count=99)),
        +fy.P4ActionProfileMember("ecmp_selector", member_id=2, action=set_egress(2)),
        +fy.P4ActionProfileGroup("ecmp_selector", group_id=1, members=[one(1), one(2)]),
        ~ecmp(1, fy.P4IndirectAction(group_id=1)),
        +ecmp(2, fy.P4IndirectAction([1 * set_egress(6)])),
        ~fy.P4MulticastGroupEntry(1, replicas=[(2, 0), (3, 0)]),
        fy.P4RegisterEntry("scratch", index=0, data=42),
        fy.P4MeterEntry("port_meter", index=0, config=slow),
        +l2_entry(1),  # already exists: the whole batch must be undone
    ]
    codes = update_codes(rpc_error(client.write, *batch, atomicity=atomicity))
    assert codes[-1] == Code.ALREADY_EXISTS
    assert all(code == Code.ABORTED for code in codes[:-1])
    assert client.read(*everything) == before


# -- direct and indexed resources -------------------------------------------------------


def test_direct_counters_are_set_with_entries_and_counted_by_packets(client, switch):
    counted = fy.P4CounterData(packet_count=3, byte_count=30)
    client.write(+acl_entry(mac=0xFFFFFFFFFFFF, action="acl_permit", counter_data=counted))
    frame = bytes.fromhex("ffffffffffff" "0a0000000002" "0800") + ipv4(ttl=5)
    switch.process(1, frame)
    [entry] = client.read(fy.P4TableEntry("acl", counter_data=fy.P4CounterData()))
    assert entry.counter_data.packet_count == 4 and entry.counter_data.byte_count == 30 + len(frame)

    zero = fy.P4CounterData(packet_count=0, byte_count=0)
    entry = acl_entry(mac=0xFFFFFFFFFFFF)
    client.write(fy.P4DirectCounterEntry("acl_counter", table_entry=entry, data=zero))
    [counter] = client.read(fy.P4DirectCounterEntry("acl_counter"))
    assert counter.data.packet_count == 0
    missing = fy.P4DirectCounterEntry("acl_counter", table_entry=acl_entry(mac=0x01))
    assert rpc_error(client.read, missing).code() == grpc.StatusCode.NOT_FOUND


def test_indexed_counters_are_written_and_read_by_index_or_all(client):
    data = fy.P4CounterData(packet_count=5, byte_count=50)
    client.write(fy.P4CounterEntry("port_counter", index=2, data=data))
    [cell] = client.read(fy.P4CounterEntry("port_counter", index=2))
    assert (cell.data.packet_count, cell.data.byte_count) == (5, 50)
    cells = client.read(fy.P4CounterEntry("port_counter"))
    assert len(cells) == 512
    past_end = fy.P4CounterEntry("port_counter", index=512, data=fy.P4CounterData(packet_count=1))
    assert update_codes(rpc_error(client.write, past_end)) == [Code.OUT_OF_RANGE]
    insert = fy.P4CounterEntry("port_counter", index=1).encode_update(client.schema)
    insert.type = INSERT
    assert update_codes(rpc_error(client.write, insert)) == [Code.INVALID_ARGUMENT]


def test_meters_keep_their_config_and_read_default_as_unset(client):
    config = fy.P4MeterConfig(cir=100, cburst=10, pir=200, pburst=20)
    client.write(fy.P4MeterEntry("port_meter", index=1, config=config))
    [cell] = client.read(fy.P4MeterEntry("port_meter", index=1))
    assert cell.config == config
    [cell] = client.read(fy.P4MeterEntry("port_meter", index=2))
    assert cell.config is None
    route = fy.P4TableEntry(
        "routes",
        match=fy.P4TableMatch(dst_addr="10.0.0.0/8"),
        action=fy.P4TableAction("route", port=1),
        meter_config=config,
    )
    client.write(+route)
    [meter] = client.read(fy.P4DirectMeterEntry(table_entry=fy.P4TableEntry("routes")))
    assert meter.config == config


def test_registers_are_served_as_an_extension(client):
    client.write(fy.P4RegisterEntry("scratch", index=3, data=77))
    [cell] = client.read(fy.P4RegisterEntry("scratch", index=3))
    assert cell.data == 77
    assert len(client.read(fy.P4RegisterEntry("scratch"))) == 16


# -- action profiles and selectors ------------------------------------------------------


def test_members_groups_and_indirect_entries(client, switch):
    members = [
        +fy.P4ActionProfileMember(
            "ecmp_selector", member_id=m, action=fy.P4TableAction("set_egress", port=m)
        )
        for m in (1, 2)
    ]
    client.write(*members)
    members = [fy.P4Member(1, weight=1), fy.P4Member(2, weight=1)]
    client.write(+fy.P4ActionProfileGroup("ecmp_selector", group_id=5, members=members))
    entry = fy.P4TableEntry(
        "ecmp",
        match=fy.P4TableMatch(dst_addr=0x0A000001),
        action=fy.P4IndirectAction(group_id=5),
    )
    client.write(+entry)
    assert client.read(fy.P4TableEntry("ecmp"))[0].action.group_id == 5
    assert {m.member_id for m in client.read(fy.P4ActionProfileMember("ecmp_selector"))} == {1, 2}
    [group] = client.read(fy.P4ActionProfileGroup("ecmp_selector"))
    assert {m.member_id for m in group.members} == {1, 2}

    in_group = -fy.P4ActionProfileMember("ecmp_selector", member_id=1)
    assert update_codes(rpc_error(client.write, in_group)) == [Code.FAILED_PRECONDITION]
    used = -fy.P4ActionProfileGroup("ecmp_selector", group_id=5)
    assert update_codes(rpc_error(client.write, used)) == [Code.FAILED_PRECONDITION]
    missing = +fy.P4TableEntry(
        "ecmp",
        match=fy.P4TableMatch(dst_addr=0x0A000002),
        action=fy.P4IndirectAction(member_id=9),
    )
    assert update_codes(rpc_error(client.write, missing)) == [Code.NOT_FOUND]


def test_one_shot_action_sets_create_hidden_groups(client):
    entry = fy.P4TableEntry(
        "ecmp",
        match=fy.P4TableMatch(dst_addr=0x0A000001),
        action=fy.P4IndirectAction(
            [1 * fy.P4TableAction("set_egress", port=1), 1 * fy.P4TableAction("set_egress", port=2)]
        ),
    )
    client.write(+entry)
    [read] = client.read(fy.P4TableEntry("ecmp"))
    assert [a.args["port"] for _, a in read.action.action_set] == [1, 2]
    assert client.read(fy.P4ActionProfileMember("ecmp_selector")) == []
    assert client.read(fy.P4ActionProfileGroup("ecmp_selector")) == []
    client.write(-fy.P4TableEntry("ecmp", match=entry.match))
    assert client.read(fy.P4TableEntry("ecmp")) == []


# -- packet replication -----------------------------------------------------------------


def test_multicast_groups_and_clone_sessions(client):
    client.write(+fy.P4MulticastGroupEntry(1, replicas=[(1, 0), (2, 0)], metadata=b"m"))
    client.write(+fy.P4CloneSessionEntry(100, replicas=[(CPU_PORT, 1)], packet_length_bytes=128))
    [group] = client.read(fy.P4MulticastGroupEntry())
    assert [(r.port, r.instance) for r in map(_replica, group.replicas)] == [(1, 0), (2, 0)]
    assert group.metadata == b"m"
    [session] = client.read(fy.P4CloneSessionEntry())
    assert session.packet_length_bytes == 128
    again = +fy.P4MulticastGroupEntry(1, replicas=[(3, 0)])
    assert update_codes(rpc_error(client.write, again)) == [Code.ALREADY_EXISTS]
    assert update_codes(rpc_error(client.write, -fy.P4CloneSessionEntry(5))) == [Code.NOT_FOUND]
    client.write(-fy.P4MulticastGroupEntry(1))
    assert client.read(fy.P4MulticastGroupEntry()) == []


def test_reading_one_missing_group_or_session_is_not_found_as_in_bmv2(client):
    """BMv2 answers a read of one multicast group or clone session that does not exist with
    NOT_FOUND (a wildcard read of none is an empty answer on both)."""
    for missing in (fy.P4MulticastGroupEntry(7), fy.P4CloneSessionEntry(7)):
        assert rpc_error(client.read, missing).code() == grpc.StatusCode.NOT_FOUND
    assert client.read(fy.P4CloneSessionEntry()) == []


def _replica(value):
    """finsy decodes a replica as a port, a (port, instance) pair or a P4Replica."""
    if isinstance(value, int):
        return P4Replica(value)
    if isinstance(value, tuple):
        return P4Replica(value[0], instance=value[1])
    return value


# -- arbitration ------------------------------------------------------------------------


def test_arbitration_between_two_controllers(server):
    _arbitration(server.port, when_the_primary_leaves=Code.NOT_FOUND)


@pytest.mark.parity
def test_a_backup_controller_cannot_write_on_bmv2_either(tmp_path):
    """As on the embedded switch, except the end (docs/embedded-switch.md): BMv2
    promotes the backup when the primary leaves."""
    with running_bmv2(tmp_path) as port:
        _arbitration(port, when_the_primary_leaves=Code.OK)


def _arbitration(port: int, *, when_the_primary_leaves: int) -> None:
    """Two controllers: only the primary writes (a backup's writes are PERMISSION_DENIED),
    a higher election id takes over, and the backup learns when the primary leaves."""
    a, b = features_client(port), features_client(port)
    try:
        stream_a = a.connect(election_id=10)
        assert stream_a.status() == Code.OK
        stream_b = b.connect(election_id=5)
        assert stream_b.status() == Code.ALREADY_EXISTS
        a.set_pipeline()
        assert rpc_error(b.write, +l2_entry()).code() == grpc.StatusCode.PERMISSION_DENIED
        a.write(+l2_entry())

        stream_b.arbitrate(20)  # b takes over; a is told it is now a backup
        assert stream_b.status() == Code.OK
        assert stream_a.status() == Code.ALREADY_EXISTS
        b.election_id = 20
        b.write(-l2_entry())
        assert rpc_error(a.write, +l2_entry()).code() == grpc.StatusCode.PERMISSION_DENIED

        stream_b.close()  # the primary leaves: the backup is told
        assert stream_a.status() == when_the_primary_leaves
    finally:
        a.close()
        b.close()


def test_a_used_election_id_ends_the_stream_with_invalid_argument(client, server):
    other = features_client(server.port)
    try:
        stream = other.connect(election_id=10)
        with pytest.raises(EOFError):
            stream.next("arbitration")
        assert stream.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        other.close()


def _no_primary_sequence(port: int) -> list:
    """Pipeline and writes from clients with and without an election id, before, during
    and after a primary holds a stream; what each of them observes."""
    bare, stray, primary = (features_client(port) for _ in range(3))
    stray.election_id = 5  # an election id, but no stream
    try:
        results = [
            observed(lambda: bare.set_pipeline()),
            observed(lambda: bare.write(+l2_entry(1))),
            observed(lambda: bare.write(-l2_entry(1))),
            observed(lambda: bare.write(+l2_entry(2))),
            observed(lambda: stray.write(+l2_entry(3))),
            observed(lambda: stray.set_pipeline(Action.RECONCILE_AND_COMMIT)),
        ]
        stream = primary.connect(election_id=10)
        results.append(stream.status())
        results += [
            observed(lambda: bare.write(+l2_entry(4))),
            observed(lambda: bare.set_pipeline(Action.RECONCILE_AND_COMMIT)),
            observed(lambda: stray.write(+l2_entry(5))),
            observed(lambda: primary.write(+l2_entry(6))),
        ]
        stream.close()
        for _ in range(50):  # the server notices the stream's end soon after
            if observed(lambda: bare.write(~l2_entry(6, port=7))) == "OK":
                break
            time.sleep(0.05)
        results.append(observed(lambda: bare.write(-l2_entry(2))))
        results.append(sorted(e.match["dst_addr"] for e in bare.read(fy.P4TableEntry("l2"))))
        return results
    finally:
        for c in (bare, stray, primary):
            c.close()


def test_without_a_controller_requests_without_election_id_may_write_as_in_bmv2(server):
    assert _no_primary_sequence(server.port) == [
        "OK", "OK", "OK", "OK",  # no stream open: anyone without an election id writes
        grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.PERMISSION_DENIED,
        Code.OK,
        grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.PERMISSION_DENIED, "OK",
        "OK",  # the primary left: writes without election id are accepted again
        [6],
    ]


@pytest.mark.parity
def test_writes_without_a_primary_are_treated_as_bmv2_treats_them(server, tmp_path):
    with running_bmv2(tmp_path) as port:
        assert _no_primary_sequence(server.port) == _no_primary_sequence(port)


def test_a_stream_without_election_id_is_a_backup_unlike_bmv2(bare):
    """BMv2 takes a missing election id for 0 and makes that stream primary, so requests
    without election id write; the spec makes it a backup (docs/embedded-switch.md)."""
    bare.set_pipeline()
    stream = bare.connect(election_id=None)
    assert stream.status() == Code.NOT_FOUND
    assert rpc_error(bare.write, +l2_entry()).code() == grpc.StatusCode.PERMISSION_DENIED


# -- packet I/O -------------------------------------------------------------------------


def test_packet_out_is_injected_and_a_packet_to_the_cpu_comes_back_as_packet_in(server):
    c = features_client(server.port)
    try:
        stream = c.connect(election_id=10)
        stream.next("arbitration")
        c.set_pipeline()
        frame = bytes.fromhex("0a0000000001" "0a0000000002" "0806") + b"payload"
        packet = fy.P4PacketOut(frame, egress_port=CPU_PORT, _pad=0).encode_update(c.schema)
        stream.send(packet=packet.packet)
        packet_in = stream.next("packet")
        assert packet_in.payload == frame
        fields = {m.metadata_id: m.value for m in packet_in.metadata}
        header = c.schema.controller_packet_metadata["packet_in"].pbuf
        port_id = next(m.id for m in header.metadata if m.name == "ingress_port")
        assert fields[port_id] == bytes([CPU_PORT])
    finally:
        c.close()


def test_only_the_primary_does_packet_io(client, server):
    backup = features_client(server.port)
    try:
        backup_stream = backup.connect(election_id=5)
        backup_stream.next("arbitration")
        packet = fy.P4PacketOut(b"\x00" * 14, egress_port=CPU_PORT, _pad=0)
        backup_stream.send(packet=packet.encode_update(backup.schema).packet)
        assert backup_stream.next("error").canonical_code == Code.PERMISSION_DENIED
        client.streams[0].send(packet=packet.encode_update(client.schema).packet)
        assert client.streams[0].next("packet").payload == b"\x00" * 14
        with pytest.raises(queue.Empty):
            backup_stream.next("packet", timeout=0.5)
    finally:
        backup.close()


def test_packet_out_with_bad_metadata_is_a_stream_error(client):
    stream = client.streams[0]
    unknown = p4r.PacketMetadata(metadata_id=99, value=b"\x01")
    stream.send(packet=p4r.PacketOut(payload=b"x", metadata=[unknown]))
    error = stream.next("error")
    assert error.canonical_code == Code.INVALID_ARGUMENT and error.HasField("packet_out")


# -- a real client library --------------------------------------------------------------


def test_finsy_switch_pushes_the_pipeline_writes_and_reads(server):
    async def scenario():
        options = fy.SwitchOptions(p4info=P4INFO, p4blob=BMV2_JSON, device_id=DEVICE_ID)
        async with fy.Switch("s1", f"127.0.0.1:{server.port}", options) as sw:
            assert sw.is_primary
            await sw.write([+l2_entry(0x0A0000000001, port=4)])
            return [entry async for entry in sw.read(fy.P4TableEntry("l2"))]

    [entry] = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert entry.match["dst_addr"] == 0x0A0000000001
    assert entry.action.args == {"port": 4}


DCIA_P4INFO = Path(__file__).resolve().parents[2] / "p4src" / "build" / "dcia.p4info.txtpb"
DCIA_JSON = DCIA_P4INFO.with_name("dcia.json")


@pytest.mark.skipif(not DCIA_JSON.exists(), reason="the DCIA program is not compiled")
def test_the_dcia_program_is_served(server):
    async def scenario():
        options = fy.SwitchOptions(p4info=DCIA_P4INFO, p4blob=DCIA_JSON, device_id=DEVICE_ID)
        async with fy.Switch("s1", f"127.0.0.1:{server.port}", options) as sw:
            route = fy.P4TableEntry(
                "ipv4_lpm",
                match=fy.P4TableMatch(ipv4_dst="10.0.2.0/24"),
                action=fy.P4TableAction("ipv4_forward", dst_mac=0x080000000222, port=2),
            )
            await sw.write([+route])
            routes = [e async for e in sw.read(fy.P4TableEntry("ipv4_lpm"))]
            stats = [e async for e in sw.read(fy.P4CounterEntry("dcia_stats"))]
            return routes, stats

    routes, stats = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert [r.match["ipv4_dst"] for r in routes] == [(0x0A000200, 24)]
    assert len(stats) == len(STAT_NAMES)


def ipv4(ttl: int) -> bytes:
    """A 20-byte IPv4 header (no options), UDP, 10.0.0.1 -> 10.0.0.2."""
    return bytes([0x45, 0, 0, 20, 0, 0, 0, 0, ttl, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])


# -- parity with BMv2 -------------------------------------------------------------------


def _parity_sequence(port: int) -> list:
    """The same Writes and Reads against any P4Runtime server; their observable results."""
    primary, backup = features_client(port), features_client(port)
    try:
        primary.connect(election_id=10).next("arbitration")
        backup.connect(election_id=5).next("arbitration")
        primary.set_pipeline()
        host_bits = fy.P4TableEntry(
            "routes",
            match=fy.P4TableMatch(dst_addr="10.0.0.0/8"),
            action=fy.P4TableAction("route", port=1),
        ).encode(primary.schema)
        host_bits.table_entry.match[0].lpm.value = bytes([10, 0, 0, 1])

        def member(member_id: int) -> fy.P4ActionProfileMember:
            action = fy.P4TableAction("set_egress", port=member_id)
            return fy.P4ActionProfileMember("ecmp_selector", member_id=member_id, action=action)

        missing_member = fy.P4Member(7, weight=1)
        member_action = fy.P4IndirectAction(member_id=1)  # in a direct table
        every_kind = fy.P4TableMatch(dst_addr=(0x0100, 0xFF00), ttl=(1, 10), protocol=6)
        counted = fy.P4CounterData(packet_count=3, byte_count=9)
        meter = fy.P4MeterConfig(cir=100, cburst=10, pir=200, pburst=20)
        batches = [
            [+l2_entry(1)],
            [+l2_entry(1)],
            [-l2_entry(2)],
            [raw_l2(primary.schema, b"\x01" + b"\x00" * 6)],
            [p4r.Update(type=INSERT, entity=host_bits)],
            [+acl_entry(priority=0)],
            [+acl_entry(priority=3), +acl_entry(priority=3)],
            [+default_entry("l2", "drop")],
            [~default_entry("ethertypes", "NoAction")],
            [fy.P4CounterEntry("port_counter", index=1, data=fy.P4CounterData(packet_count=2))],
            [+fy.P4MulticastGroupEntry(1, replicas=[(1, 0)])],
            [+fy.P4MulticastGroupEntry(1, replicas=[(1, 0)])],
            [+member(1), +member(1)],
            [+fy.P4ActionProfileGroup("ecmp_selector", group_id=1, members=[missing_member])],
            [+fy.P4TableEntry("l2", match=fy.P4TableMatch(dst_addr=9), action=member_action)],
            [+acl_entry(mac=0x0F, priority=9, counter_data=counted)],
            [+fy.P4TableEntry("acl", match=every_kind, action=fy.P4TableAction("acl_permit"), priority=20)],
            [fy.P4MeterEntry("port_meter", index=1, config=meter)],
            [~default_entry("l2", "send_to_cpu")],
        ]
        results = [observed(lambda batch=batch: primary.write(*batch)) for batch in batches]
        results.append(observed(lambda: backup.write(+l2_entry(3))))
        reads = [
            [fy.P4TableEntry("l2"), fy.P4TableEntry("acl")],
            [default_entry("l2"), default_entry("acl")],
            [fy.P4CounterEntry("port_counter", index=1)],
            [fy.P4DirectCounterEntry("acl_counter")],
            [fy.P4MeterEntry("port_meter", index=1)],
            [fy.P4ActionProfileMember("ecmp_selector")],
            [fy.P4MulticastGroupEntry()],
        ]
        results += [sorted(str(e) for e in primary.read(*query)) for query in reads]
        frame = bytes.fromhex("0a0000000001" "0a0000000002" "0806") + b"parity"
        packet = fy.P4PacketOut(frame, egress_port=CPU_PORT, _pad=0).encode_update(primary.schema)
        primary.streams[0].send(packet=packet.packet)
        results.append(str(primary.streams[0].next("packet")))
        return results
    finally:
        primary.close()
        backup.close()


@pytest.mark.parity
def test_the_same_requests_give_the_same_results_as_bmv2(server, tmp_path):
    with running_bmv2(tmp_path) as port:
        assert _parity_sequence(server.port) == _parity_sequence(port)
