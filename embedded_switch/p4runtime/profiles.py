"""Action profile members and action selector groups (ActionProfileMember,
ActionProfileGroup).

Group members carry weights and watch ports (`selection`): the executor chooses among
a member's weight in copies, as PI has BMv2 do, and leaves out members whose watch port
is down. A read gives back the weights and the watch ports as written, members in id
order (PI's order).
"""

from __future__ import annotations

from collections.abc import Iterator

from finsy.proto import p4r

from embedded_switch.p4runtime.actions import decode_action, encode_action
from embedded_switch.p4runtime.handler import DELETE, INSERT, MODIFY, Handler
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.oneshot import is_hidden
from embedded_switch.p4runtime.schema import ProfileSchema
from embedded_switch.p4runtime.selection import GROUP_SUM, WatchPort, check_weights
from embedded_switch.p4runtime.status import Code, P4RuntimeError, invalid, not_found
from embedded_switch.runtime import GroupMember


def _in_use(message: str) -> P4RuntimeError:
    return P4RuntimeError(Code.FAILED_PRECONDITION, message)


class _ProfileHandler(Handler):
    def _scopes(self, profile: ProfileSchema) -> dict[int, int]:
        """Actions a member may take: those of the tables the profile implements."""
        scopes: dict[int, int] = {}
        for table_id in profile.table_ids:
            scopes.update(self.schema.tables[table_id].action_scopes)
        return scopes

    def _referenced(self, profile: ProfileSchema, attr: str, id_: int) -> bool:
        """Whether a table entry points at member (attr='member') or group `id_`."""
        return any(
            getattr(entry, attr) == id_
            for table_id in profile.table_ids
            for entry in self.switch.table_entries(self.schema.tables[table_id].name)
        )


class Members(_ProfileHandler):
    """ActionProfileMember: a member id bound to an action of the profile's tables."""

    def write(self, kind: int, msg: p4r.ActionProfileMember, journal: Journal) -> None:
        profile = self.schema.profiles[msg.action_profile_id]
        member_id = msg.member_id
        if member_id == 0:
            raise invalid("member id 0 is not valid (it means 'all members' in reads)")
        members = self.switch.members(profile.name)
        where = f"action profile '{profile.name}'"
        if kind in (INSERT, MODIFY):
            if not msg.HasField("action"):
                raise invalid(f"member {member_id} of {where} needs an action")
            name, args = decode_action(self.schema, self._scopes(profile), msg.action, where=where)
        if kind == INSERT:
            if member_id in members:
                raise P4RuntimeError(
                    Code.ALREADY_EXISTS, f"{where} already has member {member_id}"
                )
            self.switch.member_add(profile.name, member_id, name, args)
            journal.record(lambda: self.switch.member_delete(profile.name, member_id))
        elif kind == MODIFY:
            if member_id not in members:
                raise not_found(f"{where} has no member {member_id}")
            old_action, old_args = members[member_id]
            self.switch.member_modify(profile.name, member_id, name, args)
            journal.record(
                lambda: self.switch.member_modify(profile.name, member_id, old_action, old_args)
            )
        elif kind == DELETE:
            if member_id not in members:
                raise not_found(f"{where} has no member {member_id}")
            groups = self.switch.groups(profile.name).values()
            if any(m.member == member_id for group in groups for m in group):
                raise _in_use(f"member {member_id} of {where} is in a group: remove it first")
            if self._referenced(profile, "member", member_id):
                raise _in_use(f"member {member_id} of {where} is used by a table entry")
            old_action, old_args = members[member_id]
            self.switch.member_delete(profile.name, member_id)
            journal.record(
                lambda: self.switch.member_add(profile.name, member_id, old_action, old_args)
            )
        else:
            raise invalid("update type is UNSPECIFIED")

    def read(self, msg: p4r.ActionProfileMember) -> Iterator[p4r.Entity]:
        for profile in self.schema.profiles.select(msg.action_profile_id):
            for member_id, (action, args) in sorted(self.switch.members(profile.name).items()):
                if is_hidden(member_id) or (msg.member_id and member_id != msg.member_id):
                    continue
                yield p4r.Entity(
                    action_profile_member=p4r.ActionProfileMember(
                        action_profile_id=profile.id,
                        member_id=member_id,
                        action=encode_action(self.schema, action, args),
                    )
                )


class Groups(_ProfileHandler):
    """ActionProfileGroup: a weighted set of members of an action selector."""

    def write(self, kind: int, msg: p4r.ActionProfileGroup, journal: Journal) -> None:
        profile = self.schema.profiles[msg.action_profile_id]
        where = f"action selector '{profile.name}'"
        if not profile.with_selector:
            raise invalid(f"action profile '{profile.name}' has no selector, hence no groups")
        group_id = msg.group_id
        if group_id == 0:
            raise invalid("group id 0 is not valid (it means 'all groups' in reads)")
        groups = self.switch.groups(profile.name)
        sizes = self.pipeline.group_max_size
        key = (profile.name, group_id)
        if kind == INSERT:
            if group_id in groups:
                raise P4RuntimeError(Code.ALREADY_EXISTS, f"{where} already has group {group_id}")
            self._check_max_size(profile, msg)
            members, watches = self._members(profile, msg, msg.max_size)
            self.switch.group_set(
                profile.name, group_id, members, create=True, max_size=msg.max_size
            )
            journal.record(lambda: self.switch.group_delete(profile.name, group_id))
            journal.assign(sizes, key, msg.max_size)
            self._keep_watches(key, watches, journal)
        elif kind == MODIFY:
            if group_id not in groups:
                raise not_found(f"{where} has no group {group_id}")
            if msg.max_size != sizes.get(key, 0):
                raise invalid(
                    f"group {group_id} of {where} was inserted with max_size"
                    f" {sizes.get(key, 0)}; MODIFY cannot change it to {msg.max_size}"
                )
            members, watches = self._members(profile, msg, sizes.get(key, 0))
            old = groups[group_id]
            self.switch.group_set(profile.name, group_id, members, create=False)
            journal.record(
                lambda: self.switch.group_set(profile.name, group_id, old, create=False)
            )
            self._keep_watches(key, watches, journal)
        elif kind == DELETE:
            if group_id not in groups:
                raise not_found(f"{where} has no group {group_id}")
            if self._referenced(profile, "group", group_id):
                raise _in_use(f"group {group_id} of {where} is used by a table entry")
            old = groups[group_id]
            old_size = sizes.get(key, 0)
            self.switch.group_delete(profile.name, group_id)
            journal.record(
                lambda: self.switch.group_set(
                    profile.name, group_id, old, create=True, max_size=old_size
                )
            )
            journal.discard(sizes, key)
            journal.discard(self.pipeline.watch_ports, key)
        else:
            raise invalid("update type is UNSPECIFIED")

    @staticmethod
    def _check_max_size(profile: ProfileSchema, msg: p4r.ActionProfileGroup) -> None:
        """PI's rules for the max_size of a new group."""
        where = f"group {msg.group_id} of action selector '{profile.name}'"
        if msg.max_size < 0:
            raise invalid(f"{where}: Group max_size cannot be less than 0 (got {msg.max_size})")
        if profile.max_group_size and msg.max_size > profile.max_group_size:
            raise invalid(
                f"{where}: max_size {msg.max_size} exceeds the P4Info max_group_size"
                f" {profile.max_group_size}"
            )

    def _members(
        self, profile: ProfileSchema, msg: p4r.ActionProfileGroup, max_size: int
    ) -> tuple[list[GroupMember], dict[int, WatchPort]]:
        """The executor's members and their watch ports as written, checked in PI's order:
        weights, their sum, then each member (it exists, it is listed once)."""
        where = f"group {msg.group_id} of action selector '{profile.name}'"
        check_weights(
            [m.weight for m in msg.members], max_size or profile.max_group_size, where, GROUP_SUM
        )
        existing = self.switch.members(profile.name)
        members: dict[int, GroupMember] = {}
        watches: dict[int, WatchPort] = {}
        for member in msg.members:
            if member.member_id not in existing:
                raise not_found(f"{where}: action profile has no member {member.member_id}")
            if member.member_id in members:
                raise invalid(
                    f"{where}: member {member.member_id} is listed twice, use weights instead"
                )
            watch = WatchPort.of(member, f"{where}, member {member.member_id}")
            members[member.member_id] = GroupMember(member.member_id, member.weight, watch.port)
            if watch.kind is not None:
                watches[member.member_id] = watch
        return list(members.values()), watches

    def _keep_watches(self, key: tuple[str, int], watches: dict[int, WatchPort], journal: Journal):
        if watches:
            journal.assign(self.pipeline.watch_ports, key, watches)
        else:
            journal.discard(self.pipeline.watch_ports, key)

    def read(self, msg: p4r.ActionProfileGroup) -> Iterator[p4r.Entity]:
        for profile in self.schema.profiles.select(msg.action_profile_id):
            if not profile.with_selector:
                continue
            for group_id, members in sorted(self.switch.groups(profile.name).items()):
                if is_hidden(group_id) or (msg.group_id and group_id != msg.group_id):
                    continue
                key = (profile.name, group_id)
                watches = self.pipeline.watch_ports.get(key, {})
                group = p4r.ActionProfileGroup(
                    action_profile_id=profile.id,
                    group_id=group_id,
                    max_size=self.pipeline.group_max_size.get(key, 0),
                )
                for m in members:
                    member = group.members.add(member_id=m.member, weight=m.weight)
                    if m.member in watches:
                        watches[m.member].write_to(member)
                yield p4r.Entity(action_profile_group=group)
