"""The packet replication engine: multicast groups and clone sessions
(PacketReplicationEngineEntry).

v1model's `mcast_grp` and `egress_rid` are 16 bits wide, so group ids and replica
instances above 0xffff are refused as BMv2 refuses them. Backup replicas are not
supported. A replica list written with the deprecated `egress_port` field is read back
the same way; otherwise ports are canonical bytestrings.
"""

from __future__ import annotations

from collections.abc import Iterator

from finsy.proto import p4r

from embedded_switch.p4runtime.codec import decode_uint, encode_uint
from embedded_switch.p4runtime.handler import DELETE, INSERT, MODIFY, Handler
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.status import Code, P4RuntimeError, invalid, not_found, unimplemented

_MAX_GROUP_ID = 0xFFFF
_MAX_INSTANCE = 0xFFFF

Replicas = list[tuple[int, int]]  # (egress port, instance)


def decode_replicas(msgs, where: str) -> tuple[Replicas, bool]:
    """(port, instance) pairs, and whether they used the deprecated `egress_port`."""
    replicas: Replicas = []
    legacy = False
    for r in msgs:
        if r.backup_replicas:
            raise unimplemented(f"{where}: backup replicas are not supported")
        kind = r.WhichOneof("port_kind")
        if kind == "port":
            port = decode_uint(r.port, 32, f"{where}: replica port")
        elif kind == "egress_port":
            port, legacy = r.egress_port, True
        else:
            raise invalid(f"{where}: a replica needs a port")
        if r.instance > _MAX_INSTANCE:
            raise invalid(f"{where}: instance {r.instance} does not fit in 16 bits")
        if (port, r.instance) in replicas:
            raise invalid(f"{where}: replica (port {port}, instance {r.instance}) is listed twice")
        replicas.append((port, r.instance))
    return replicas, legacy


def encode_replicas(replicas: Replicas, legacy: bool) -> list[p4r.Replica]:
    if legacy:
        return [p4r.Replica(egress_port=port, instance=inst) for port, inst in replicas]
    return [p4r.Replica(port=encode_uint(port), instance=inst) for port, inst in replicas]


class Replication(Handler):
    """MulticastGroupEntry and CloneSessionEntry."""

    def write(self, kind: int, msg: p4r.PacketReplicationEngineEntry, journal: Journal) -> None:
        which = msg.WhichOneof("type")
        if which == "multicast_group_entry":
            self._write_multicast(kind, msg.multicast_group_entry, journal)
        elif which == "clone_session_entry":
            self._write_clone(kind, msg.clone_session_entry, journal)
        else:
            raise invalid("PacketReplicationEngineEntry needs a multicast group or clone session")

    def _check_kind(self, kind: int, exists: bool, where: str) -> None:
        if kind == INSERT and exists:
            raise P4RuntimeError(Code.ALREADY_EXISTS, f"{where} already exists")
        if kind in (MODIFY, DELETE) and not exists:
            raise not_found(f"{where} does not exist")
        if kind not in (INSERT, MODIFY, DELETE):
            raise invalid("update type is UNSPECIFIED")

    def _write_multicast(self, kind: int, msg: p4r.MulticastGroupEntry, journal: Journal) -> None:
        group_id = msg.multicast_group_id
        where = f"multicast group {group_id}"
        if group_id == 0:
            raise invalid("multicast group id 0 is not valid (it means 'all groups' in reads)")
        if group_id > _MAX_GROUP_ID:
            raise P4RuntimeError(Code.OUT_OF_RANGE, f"{where}: ids are 16 bits wide")
        groups = self.switch.mc_groups()
        self._check_kind(kind, group_id in groups, where)
        old = groups.get(group_id)
        if kind == DELETE:
            self.switch.mc_group_delete(group_id)
            journal.discard(self.pipeline.multicast_metadata, group_id)
            journal.discard(self.pipeline.legacy_ports, ("multicast", group_id))
        else:
            replicas, legacy = decode_replicas(msg.replicas, where)
            self.switch.mc_group_set(group_id, replicas)
            journal.assign(self.pipeline.multicast_metadata, group_id, msg.metadata)
            journal.assign(self.pipeline.legacy_ports, ("multicast", group_id), legacy)
        if old is None:
            journal.record(lambda: self.switch.mc_group_delete(group_id))
        else:
            journal.record(lambda: self.switch.mc_group_set(group_id, old))

    def _write_clone(self, kind: int, msg: p4r.CloneSessionEntry, journal: Journal) -> None:
        session_id = msg.session_id
        where = f"clone session {session_id}"
        if session_id == 0:
            raise invalid("clone session id 0 is not valid (it means 'all sessions' in reads)")
        sessions = self.switch.clone_sessions()
        self._check_kind(kind, session_id in sessions, where)
        old = sessions.get(session_id)
        if kind == DELETE:
            self.switch.clone_session_delete(session_id)
            journal.discard(self.pipeline.legacy_ports, ("clone", session_id))
        else:
            replicas, legacy = decode_replicas(msg.replicas, where)
            self.switch.clone_session_set(
                session_id,
                replicas,
                class_of_service=msg.class_of_service,
                packet_length_bytes=msg.packet_length_bytes,
            )
            journal.assign(self.pipeline.legacy_ports, ("clone", session_id), legacy)
        if old is None:
            journal.record(lambda: self.switch.clone_session_delete(session_id))
        else:
            journal.record(lambda: self._restore_clone(session_id, old))

    def _restore_clone(self, session_id: int, session: dict) -> None:
        self.switch.clone_session_set(
            session_id,
            session["replicas"],
            class_of_service=session["class_of_service"],
            packet_length_bytes=session["packet_length_bytes"],
        )

    def read(self, msg: p4r.PacketReplicationEngineEntry) -> Iterator[p4r.Entity]:
        which = msg.WhichOneof("type")
        legacy = self.pipeline.legacy_ports
        if which == "multicast_group_entry":
            wanted = msg.multicast_group_entry.multicast_group_id
            groups = self.switch.mc_groups()
            if wanted and wanted not in groups:  # as BMv2 answers a read of one missing group
                raise not_found(f"Multicast group {wanted} does not exist")
            for group_id, replicas in sorted(groups.items()):
                if wanted and group_id != wanted:
                    continue
                entry = p4r.MulticastGroupEntry(
                    multicast_group_id=group_id,
                    replicas=encode_replicas(replicas, legacy.get(("multicast", group_id), False)),
                    metadata=self.pipeline.multicast_metadata.get(group_id, b""),
                )
                yield p4r.Entity(
                    packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                        multicast_group_entry=entry
                    )
                )
        elif which == "clone_session_entry":
            wanted = msg.clone_session_entry.session_id
            sessions = self.switch.clone_sessions()
            if wanted and wanted not in sessions:
                raise not_found(f"Clone session id {wanted} does not exist")
            for session_id, session in sorted(sessions.items()):
                if wanted and session_id != wanted:
                    continue
                entry = p4r.CloneSessionEntry(
                    session_id=session_id,
                    replicas=encode_replicas(
                        session["replicas"], legacy.get(("clone", session_id), False)
                    ),
                    class_of_service=session["class_of_service"],
                    packet_length_bytes=session["packet_length_bytes"],
                )
                yield p4r.Entity(
                    packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                        clone_session_entry=entry
                    )
                )
        else:
            raise invalid("PacketReplicationEngineEntry needs a multicast group or clone session")
