"""One-shot action selector programming: a table entry that carries its action set.

The server turns an `ActionProfileActionSet` into a hidden group of hidden members of
the table's action selector, with ids from `ONESHOT_BASE` up (above the uint32 ids a
controller can use), and deletes them with the entry. As PI does on BMv2, an action of
weight w becomes w members, created in a row, each in the group once, all watching the
action's watch port. Reads of the entry give the action set back as written (weights
and watch ports); reads of members and groups do not show the hidden ones.
"""

from __future__ import annotations

from typing import NamedTuple

from finsy.proto import p4r

from embedded_switch.p4runtime.actions import encode_action
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.pipeline import ONESHOT_BASE, OneShotAction, Pipeline
from embedded_switch.p4runtime.selection import WatchPort
from embedded_switch.runtime import GroupMember


def is_hidden(id_: int | None) -> bool:
    """Whether a member or group id was allocated for a one-shot action set."""
    return id_ is not None and id_ >= ONESHOT_BASE


class OneShotItem(NamedTuple):
    """One action of a one-shot action set, decoded and checked."""

    action: str
    args: list[int]
    weight: int
    watch: WatchPort


class OneShotGroups:
    """Creates, lists and deletes the hidden groups behind one-shot entries."""

    def __init__(self, switch, pipeline: Pipeline):
        self.switch = switch
        self.pipeline = pipeline

    def create(self, profile: str, items: list[OneShotItem], journal: Journal) -> int:
        """A new hidden group with `weight` hidden members per action; its id."""
        written = []
        for item in items:
            members = []
            for _ in range(item.weight):
                member_id = next(self.pipeline.oneshot_ids)
                self.switch.member_add(profile, member_id, item.action, item.args)
                journal.record(lambda m=member_id: self.switch.member_delete(profile, m))
                members.append(member_id)
            written.append(OneShotAction(tuple(members), item.watch))
        group_id = next(self.pipeline.oneshot_ids)
        self.switch.group_set(profile, group_id, _group_members(written), create=True)
        journal.record(lambda: self.switch.group_delete(profile, group_id))
        journal.assign(self.pipeline.oneshot_sets, (profile, group_id), tuple(written))
        return group_id

    def encode(self, profile: str, group_id: int) -> list[p4r.ActionProfileAction]:
        """The action set of a hidden group, as it was written."""
        members = self.switch.members(profile)
        out = []
        for written in self.pipeline.oneshot_sets[(profile, group_id)]:
            name, args = members[written.members[0]]
            action = p4r.ActionProfileAction(
                action=encode_action(self.pipeline.schema, name, args), weight=written.weight
            )
            written.watch.write_to(action)
            out.append(action)
        return out

    def delete(self, profile: str, group_id: int, journal: Journal) -> None:
        """Remove a hidden group (no longer referenced) and its members."""
        written = self.pipeline.oneshot_sets[(profile, group_id)]
        all_members = self.switch.members(profile)
        self.switch.group_delete(profile, group_id)
        journal.record(
            lambda: self.switch.group_set(profile, group_id, _group_members(written), create=True)
        )
        journal.discard(self.pipeline.oneshot_sets, (profile, group_id))
        # Newest first, so that a rollback re-creates the members in their original order
        # (the executor gives members BMv2's handles, lowest free first).
        for member_id in reversed([m for w in written for m in w.members]):
            action, args = all_members[member_id]
            self.switch.member_delete(profile, member_id)
            journal.record(
                lambda m=member_id, a=action, p=args: self.switch.member_add(profile, m, a, p)
            )


def _group_members(written: tuple[OneShotAction, ...] | list[OneShotAction]) -> list[GroupMember]:
    return [GroupMember(m, 1, w.watch.port) for w in written for m in w.members]
