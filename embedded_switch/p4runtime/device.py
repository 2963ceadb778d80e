"""One P4Runtime device: the executor, its committed pipeline, arbitration, packet I/O
and digests.

`Device` holds the P4Runtime semantics independent of gRPC: the checks every RPC
makes (device id, primary, pipeline present), batch atomicity for Write, reads under
the switch lock, pipeline verification and commit, the controller header of
packet-in and packet-out, and the digests the data plane sends to the primary.
`server.py` only moves messages and statuses.
"""

from __future__ import annotations

import json
import logging

from finsy.proto import p4r

from embedded_switch.errors import SwitchError
from embedded_switch.p4runtime.arbitration import Arbitration, Controller, election_id_of
from embedded_switch.p4runtime.digests import Digests
from embedded_switch.p4runtime.externs import Counters, Meters, Registers
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.packet_io import build_packet_out, parse_packet_in
from embedded_switch.p4runtime.pipeline import Pipeline
from embedded_switch.p4runtime.profiles import Groups, Members
from embedded_switch.p4runtime.replication import Replication
from embedded_switch.p4runtime.schema import Schema
from embedded_switch.p4runtime.status import (
    Code,
    P4RuntimeError,
    error_message,
    from_switch_error,
    invalid,
    not_found,
    permission_denied,
    unimplemented,
)
from embedded_switch.p4runtime.tables import DirectCounters, DirectMeters, TableEntries
from embedded_switch.program import describe
from embedded_switch.switch import Switch

log = logging.getLogger(__name__)

#: Entity kinds (the `Entity.entity` oneof) and the handler class serving each.
HANDLERS = {
    "table_entry": TableEntries,
    "action_profile_member": Members,
    "action_profile_group": Groups,
    "counter_entry": Counters,
    "direct_counter_entry": DirectCounters,
    "meter_entry": Meters,
    "direct_meter_entry": DirectMeters,
    "register_entry": Registers,
    "packet_replication_engine_entry": Replication,
}

NO_PIPELINE = "No forwarding pipeline config set for this device (send SetForwardingPipelineConfig)"

Action = p4r.SetForwardingPipelineConfigRequest
Atomicity = p4r.WriteRequest
_Get = p4r.GetForwardingPipelineConfigRequest

#: GetForwardingPipelineConfig response type -> (P4Info?, device config?); cookie always.
_RESPONSE_PARTS = {
    _Get.ALL: (True, True),
    _Get.COOKIE_ONLY: (False, False),
    _Get.P4INFO_AND_COOKIE: (True, False),
    _Get.DEVICE_CONFIG_AND_COOKIE: (False, True),
}


class Device:
    """The P4Runtime view of one embedded switch."""

    def __init__(self, switch: Switch, ports, device_id: int):
        self.switch = switch
        self.ports = ports
        self.device_id = device_id
        self.arbitration = Arbitration(device_id)
        self.pipeline: Pipeline | None = None
        self._saved: tuple[p4r.ForwardingPipelineConfig, Schema] | None = None
        self._handlers: dict[str, object] = {}
        if ports is not None:
            ports.set_cpu_handler(self.packet_in)
        switch.set_digest_handler(self.digest)

    # -- checks shared by the RPCs ----------------------------------------------------

    def check_device(self, device_id: int) -> None:
        if device_id != self.device_id:
            raise not_found(f"unknown device id {device_id} (this switch is {self.device_id})")

    def _check_writer(self, request) -> None:
        """Device, role and primary checks, in the order the spec gives for Write."""
        self.check_device(request.device_id)
        if request.role:
            raise not_found(f"unknown role '{request.role}' (only the default role exists)")
        if not self.arbitration.may_write(election_id_of(request)):
            raise permission_denied("Not primary: only the primary controller may write")

    def _require_pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise P4RuntimeError(Code.FAILED_PRECONDITION, NO_PIPELINE)
        return self.pipeline

    # -- forwarding pipeline ----------------------------------------------------------

    def set_pipeline(self, request: p4r.SetForwardingPipelineConfigRequest) -> None:
        """VERIFY checks that the P4Info matches the JSON and that the JSON loads;
        VERIFY_AND_SAVE also keeps the config for a later COMMIT, which installs it
        (state cleared) like VERIFY_AND_COMMIT; RECONCILE_AND_COMMIT keeps the state,
        untouched when the program is unchanged, else written into the new program.
        """
        with self.switch.lock:
            self._check_writer(request)
            action = request.action
            if action == Action.COMMIT:
                if request.HasField("config"):
                    raise invalid("COMMIT takes no config: it commits the last VERIFY_AND_SAVE")
                if self._saved is None:
                    raise not_found("no saved config to commit")
                self._commit(*self._saved)
                self._saved = None
                return
            if action == Action.UNSPECIFIED:
                raise invalid("SetForwardingPipelineConfig action is UNSPECIFIED")
            config = request.config
            schema = self._verify(config)
            if action == Action.VERIFY:
                self._realizable(config)
            elif action == Action.VERIFY_AND_SAVE:
                self._realizable(config)
                self._saved = (config, schema)
            elif action == Action.VERIFY_AND_COMMIT:
                self._commit(config, schema)
            elif action == Action.RECONCILE_AND_COMMIT:
                if self.pipeline is None:
                    self._commit(config, schema)
                elif _same_program(self.pipeline.config, config):
                    self.pipeline.config = config  # state kept; only the cookie may change
                else:
                    self._reconcile(config, schema)
            else:
                raise invalid(f"unknown SetForwardingPipelineConfig action {action}")

    def _verify(self, config: p4r.ForwardingPipelineConfig) -> Schema:
        """The schema of a config whose P4Info agrees with its BMv2 JSON."""
        if not config.HasField("p4info"):
            raise invalid("the config has no P4Info")
        if not config.p4_device_config:
            raise invalid("the config has no device config (the BMv2 JSON)")
        try:
            program = describe(json.loads(config.p4_device_config))
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(f"the device config is not a BMv2 JSON document: {exc}") from None
        except SwitchError as exc:
            raise invalid(f"the BMv2 JSON is not supported: {exc}") from None
        return Schema.bind(config.p4info, program)

    def _realizable(self, config: p4r.ForwardingPipelineConfig) -> None:
        """Load the program into a scratch switch, as only loading proves it runs."""
        try:
            Switch(device_id=self.device_id).load_pipeline(config.p4_device_config)
        except SwitchError as exc:
            raise invalid(f"the BMv2 JSON cannot be loaded: {exc}") from None

    def _commit(self, config: p4r.ForwardingPipelineConfig, schema: Schema) -> None:
        try:
            self.switch.load_pipeline(config.p4_device_config)
        except SwitchError as exc:
            raise invalid(f"the BMv2 JSON cannot be loaded: {exc}") from None
        if "digest_entry" in self._handlers:
            self._handlers["digest_entry"].close()
        self.pipeline = Pipeline(config, schema)
        self._handlers = {kind: cls(self.switch, self.pipeline) for kind, cls in HANDLERS.items()}
        self._handlers["digest_entry"] = Digests(
            self.switch, self.pipeline, primary=self.arbitration.primary
        )
        log.info("pipeline committed (%d tables)", len(schema.tables))

    def _reconcile(self, config: p4r.ForwardingPipelineConfig, schema: Schema) -> None:
        """Commit a changed program and write the forwarding state back into it.

        The state is read with the old P4Info and written with the new one, so objects
        both programs have must keep their P4Info ids (p4c derives them from names).
        If any of it cannot be written, the old program and its state come back and the
        request fails with INVALID_ARGUMENT, as the spec asks.
        """
        old = self.pipeline
        state = self._forwarding_state()
        self._commit(config, schema)
        failure = self._replay(state)
        if failure is not None:
            self._commit(old.config, old.schema)
            self._replay(state)
            raise invalid(f"the forwarding state cannot be kept in the new program: {failure}")

    def _forwarding_state(self) -> list[p4r.Update]:
        """Everything a controller wrote, as the updates that write it again."""
        updates = []
        for query, kind in _STATE:
            which = query.WhichOneof("entity")
            for entity in self._handlers[which].read(getattr(query, which)):
                if not entity.table_entry.is_const:
                    updates.append(p4r.Update(type=kind, entity=entity))
        return updates

    def _replay(self, updates: list[p4r.Update]) -> str | None:
        """Write `updates` (skipping defaults the program already has); the first error."""
        defaults = self._handlers["table_entry"].read(p4r.TableEntry(is_default_action=True))
        unchanged = [p4r.Update(type=p4r.Update.MODIFY, entity=e) for e in defaults]
        for update in updates:
            if update in unchanged:
                continue
            error = self._apply(update, Journal())
            if error.canonical_code != Code.OK:
                return f"{Code.Name(error.canonical_code)}: {error.message}"
        return None

    def get_pipeline(
        self, request: p4r.GetForwardingPipelineConfigRequest
    ) -> p4r.GetForwardingPipelineConfigResponse:
        self.check_device(request.device_id)
        stored = self._require_pipeline().config
        if request.response_type not in _RESPONSE_PARTS:
            raise invalid(f"unknown response_type {request.response_type}")
        with_p4info, with_device_config = _RESPONSE_PARTS[request.response_type]
        config = p4r.ForwardingPipelineConfig()
        if stored.HasField("cookie"):
            config.cookie.CopyFrom(stored.cookie)
        if with_p4info:
            config.p4info.CopyFrom(stored.p4info)
        if with_device_config:
            config.p4_device_config = stored.p4_device_config
        return p4r.GetForwardingPipelineConfigResponse(config=config)

    # -- Write ------------------------------------------------------------------------

    def write(self, request: p4r.WriteRequest) -> list[p4r.Error] | None:
        """Apply a batch; None when every update succeeded, else one Error per update.

        The switch lock is held for the whole batch, so packets and other RPCs see the
        state before or after it (which also makes DATAPLANE_ATOMIC hold).
        """
        with self.switch.lock:
            self._check_writer(request)
            self._require_pipeline()
            atomic = request.atomicity in (Atomicity.ROLLBACK_ON_ERROR, Atomicity.DATAPLANE_ATOMIC)
            if request.atomicity not in (Atomicity.CONTINUE_ON_ERROR,) and not atomic:
                raise unimplemented(f"unknown atomicity {request.atomicity}")
            batch = Journal()
            errors: list[p4r.Error] = []
            failed = False
            for update in request.updates:
                if atomic and failed:
                    skipped = "not attempted: an earlier update failed"
                    errors.append(error_message(Code.ABORTED, skipped))
                    continue
                errors.append(self._apply(update, batch))
                failed = failed or errors[-1].canonical_code != Code.OK
            if not failed:
                return None
            if atomic:
                batch.rollback()
                errors = [
                    error_message(Code.ABORTED, "rolled back: another update of the batch failed")
                    if e.canonical_code == Code.OK
                    else e
                    for e in errors
                ]
            return errors

    def _apply(self, update: p4r.Update, batch: Journal) -> p4r.Error:
        """Write one update, all or nothing; its Error (OK on success). Its undo joins `batch`."""
        journal = Journal()
        try:
            self._write_one(update, journal)
        except P4RuntimeError as exc:
            journal.rollback()
            return error_message(exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - a bug fails its update, not the server
            journal.rollback()
            log.exception("a Write update failed unexpectedly")
            return error_message(Code.INTERNAL, f"{type(exc).__name__}: {exc}")
        batch.extend(journal)
        return error_message(Code.OK)

    def _write_one(self, update: p4r.Update, journal: Journal) -> None:
        kind = update.entity.WhichOneof("entity")
        if kind is None:
            raise invalid("the update has no entity")
        handler = self._handlers.get(kind)
        if handler is None:
            raise unimplemented(f"writing {kind} is not supported")
        try:
            handler.write(update.type, getattr(update.entity, kind), journal)
        except SwitchError as exc:
            raise from_switch_error(exc) from None

    # -- Read -------------------------------------------------------------------------

    def read(self, request: p4r.ReadRequest) -> list[p4r.Entity]:
        """Every entity the request's filters select, read under the switch lock.

        As BMv2, the first invalid filter ends the read with its own error code.
        """
        self.check_device(request.device_id)
        with self.switch.lock:
            self._require_pipeline()
            entities: list[p4r.Entity] = []
            for entity in request.entities:
                kind = entity.WhichOneof("entity")
                if kind is None:
                    raise invalid("an Entity in the ReadRequest has no entity set")
                handler = self._handlers.get(kind)
                if handler is None:
                    raise unimplemented(f"reading {kind} is not supported")
                try:
                    entities.extend(handler.read(getattr(entity, kind)))
                except SwitchError as exc:
                    raise from_switch_error(exc) from None
            return entities

    # -- StreamChannel ----------------------------------------------------------------

    def arbitrate(self, controller: Controller, update: p4r.MasterArbitrationUpdate) -> None:
        """A MasterArbitrationUpdate; waits for writes in flight, as the spec asks."""
        with self.switch.lock:
            primary = self.arbitration.primary()
            self.arbitration.arbitrate(controller, update)
            self._primary_changed(primary)

    def leave(self, controller: Controller) -> None:
        with self.switch.lock:
            primary = self.arbitration.primary()
            self.arbitration.leave(controller)
            self._primary_changed(primary)

    def _primary_changed(self, before: Controller | None) -> None:
        """A new primary has received no digest list yet: nothing counts as sent."""
        digests = self._handlers.get("digest_entry")
        if digests is not None and self.arbitration.primary() is not before:
            digests.forget_sent()

    def packet_out(self, controller: Controller, packet: p4r.PacketOut) -> None:
        """Inject a controller's PacketOut from the CPU port (primary only)."""
        if not self.arbitration.is_primary(controller):
            raise permission_denied("only the primary controller may send packets")
        pipeline = self._require_pipeline()
        data = build_packet_out(pipeline.schema.packet_out, packet)
        if self.ports is None:
            raise P4RuntimeError(Code.UNAVAILABLE, "the switch was started without ports")
        self.ports.inject_from_cpu(data)

    def digest_ack(self, controller: Controller, ack: p4r.DigestListAck) -> None:
        """The primary acknowledges a DigestList: its data may be sent again."""
        if not self.arbitration.is_primary(controller):
            raise permission_denied("only the primary controller acknowledges digest lists")
        self._require_pipeline()
        self._handlers["digest_entry"].ack(ack)

    def digest(self, name: str, values: list[int]) -> None:
        """A digest the data plane generated (called outside the switch lock)."""
        digests = self._handlers.get("digest_entry")
        if digests is None:
            log.debug("digest '%s' dropped: no pipeline was set over P4Runtime", name)
            return
        digests.learn(name, values)

    def packet_in(self, data: bytes) -> None:
        """A packet the switch sent to its CPU port: a PacketIn for the primary."""
        pipeline = self.pipeline
        primary = self.arbitration.primary()
        if pipeline is None or primary is None:
            return
        message = parse_packet_in(pipeline.schema.packet_in, data)
        if message is None:
            log.warning("%d-byte packet to the CPU is shorter than packet_in", len(data))
            return
        (primary.offer or primary.send)(p4r.StreamMessageResponse(packet=message))


#: What RECONCILE_AND_COMMIT carries over: (wildcard read, update kind), in write order.
_STATE = (
    (p4r.Entity(action_profile_member=p4r.ActionProfileMember()), p4r.Update.INSERT),
    (p4r.Entity(action_profile_group=p4r.ActionProfileGroup()), p4r.Update.INSERT),
    (
        p4r.Entity(
            table_entry=p4r.TableEntry(
                counter_data=p4r.CounterData(), meter_config=p4r.MeterConfig()
            )
        ),
        p4r.Update.INSERT,
    ),
    (p4r.Entity(table_entry=p4r.TableEntry(is_default_action=True)), p4r.Update.MODIFY),
    (
        p4r.Entity(
            packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                multicast_group_entry=p4r.MulticastGroupEntry()
            )
        ),
        p4r.Update.INSERT,
    ),
    (
        p4r.Entity(
            packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                clone_session_entry=p4r.CloneSessionEntry()
            )
        ),
        p4r.Update.INSERT,
    ),
    (p4r.Entity(counter_entry=p4r.CounterEntry()), p4r.Update.MODIFY),
    (p4r.Entity(meter_entry=p4r.MeterEntry()), p4r.Update.MODIFY),
    (p4r.Entity(register_entry=p4r.RegisterEntry()), p4r.Update.MODIFY),
    (p4r.Entity(digest_entry=p4r.DigestEntry()), p4r.Update.INSERT),
)


def _same_program(old: p4r.ForwardingPipelineConfig, new: p4r.ForwardingPipelineConfig) -> bool:
    return old.p4info == new.p4info and old.p4_device_config == new.p4_device_config
