"""Action profile members and action selector groups (ActionProfileMember,
ActionProfileGroup).

The executor's selector picks uniformly among a group's members, so a member's weight
must be 1 (0, unset, is read as 1), as with BMv2. Watch ports are not supported.
"""

from __future__ import annotations

from collections.abc import Iterator

from finsy.proto import p4r

from embedded_switch.p4runtime.actions import decode_action, encode_action
from embedded_switch.p4runtime.handler import DELETE, INSERT, MODIFY, Handler
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.oneshot import is_hidden
from embedded_switch.p4runtime.schema import ProfileSchema
from embedded_switch.p4runtime.status import (
    Code,
    P4RuntimeError,
    invalid,
    not_found,
    unimplemented,
)


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
            if any(member_id in group for group in self.switch.groups(profile.name).values()):
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
        size_key = (profile.name, group_id)
        if kind == INSERT:
            if group_id in groups:
                raise P4RuntimeError(Code.ALREADY_EXISTS, f"{where} already has group {group_id}")
            members = self._members(profile, msg)
            self.switch.group_set(
                profile.name, group_id, members, create=True, max_size=msg.max_size
            )
            journal.record(lambda: self.switch.group_delete(profile.name, group_id))
            journal.assign(sizes, size_key, msg.max_size)
        elif kind == MODIFY:
            if group_id not in groups:
                raise not_found(f"{where} has no group {group_id}")
            if msg.max_size != sizes.get(size_key, 0):
                raise invalid(
                    f"group {group_id} of {where} was inserted with max_size"
                    f" {sizes.get(size_key, 0)}; MODIFY cannot change it to {msg.max_size}"
                )
            members = self._members(profile, msg)
            old = groups[group_id]
            self.switch.group_set(profile.name, group_id, members, create=False)
            journal.record(
                lambda: self.switch.group_set(profile.name, group_id, old, create=False)
            )
        elif kind == DELETE:
            if group_id not in groups:
                raise not_found(f"{where} has no group {group_id}")
            if self._referenced(profile, "group", group_id):
                raise _in_use(f"group {group_id} of {where} is used by a table entry")
            old = groups[group_id]
            old_size = sizes.get(size_key, 0)
            self.switch.group_delete(profile.name, group_id)
            journal.record(
                lambda: self.switch.group_set(
                    profile.name, group_id, old, create=True, max_size=old_size
                )
            )
            journal.discard(sizes, size_key)
        else:
            raise invalid("update type is UNSPECIFIED")

    def _members(self, profile: ProfileSchema, msg: p4r.ActionProfileGroup) -> list[int]:
        """The executor's member list, checked."""
        where = f"group {msg.group_id} of action selector '{profile.name}'"
        if profile.max_group_size and msg.max_size > profile.max_group_size:
            raise invalid(
                f"{where}: max_size {msg.max_size} exceeds the P4Info max_group_size"
                f" {profile.max_group_size}"
            )
        existing = self.switch.members(profile.name)
        seen: set[int] = set()
        members: list[int] = []
        for member in msg.members:
            if member.member_id in seen:
                raise invalid(f"{where}: member {member.member_id} is listed twice (use weight)")
            seen.add(member.member_id)
            if member.member_id not in existing:
                raise not_found(f"{where}: action profile has no member {member.member_id}")
            if member.WhichOneof("watch_kind") is not None:
                raise unimplemented(f"{where}: watch ports are not supported")
            if member.weight not in (0, 1):
                raise unimplemented(
                    f"{where}: member {member.member_id} has weight {member.weight};"
                    " only weight 1 is supported"
                )
            members.append(member.member_id)
        if msg.max_size and len(members) > msg.max_size:
            raise P4RuntimeError(
                Code.RESOURCE_EXHAUSTED,
                f"{where}: {len(members)} members exceed max_size {msg.max_size}",
            )
        return members

    def read(self, msg: p4r.ActionProfileGroup) -> Iterator[p4r.Entity]:
        for profile in self.schema.profiles.select(msg.action_profile_id):
            if not profile.with_selector:
                continue
            for group_id, members in sorted(self.switch.groups(profile.name).items()):
                if is_hidden(group_id) or (msg.group_id and group_id != msg.group_id):
                    continue
                yield p4r.Entity(
                    action_profile_group=p4r.ActionProfileGroup(
                        action_profile_id=profile.id,
                        group_id=group_id,
                        members=[
                            p4r.ActionProfileGroup.Member(member_id=m, weight=1) for m in members
                        ],
                        max_size=self.pipeline.group_max_size.get((profile.name, group_id), 0),
                    )
                )
