"""One-shot action selector programming: a table entry that carries its action set.

The server turns an `ActionProfileActionSet` into a hidden group of hidden members of
the table's action selector, with ids from `ONESHOT_BASE` up (above the uint32 ids a
controller can use), and deletes them with the entry. Reads of the entry give the
action set back; reads of members and groups do not show the hidden ones.
"""

from __future__ import annotations

from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.pipeline import ONESHOT_BASE, Pipeline


def is_hidden(id_: int | None) -> bool:
    """Whether a member or group id was allocated for a one-shot action set."""
    return id_ is not None and id_ >= ONESHOT_BASE


class OneShotGroups:
    """Creates, lists and deletes the hidden groups behind one-shot entries."""

    def __init__(self, switch, pipeline: Pipeline):
        self.switch = switch
        self.pipeline = pipeline

    def create(self, profile: str, actions: list[tuple[str, list[int]]], journal: Journal) -> int:
        """A new hidden group with one hidden member per (action, args); its id."""
        members = []
        for action, args in actions:
            member_id = next(self.pipeline.oneshot_ids)
            self.switch.member_add(profile, member_id, action, args)
            journal.record(lambda m=member_id: self.switch.member_delete(profile, m))
            members.append(member_id)
        group_id = next(self.pipeline.oneshot_ids)
        self.switch.group_set(profile, group_id, members, create=True)
        journal.record(lambda: self.switch.group_delete(profile, group_id))
        return group_id

    def actions(self, profile: str, group_id: int) -> list[tuple[str, list[int]]]:
        """The (action, args) of a hidden group's members, in order."""
        members = self.switch.members(profile)
        return [members[m] for m in self.switch.groups(profile)[group_id]]

    def delete(self, profile: str, group_id: int, journal: Journal) -> None:
        """Remove a hidden group (no longer referenced) and its members."""
        member_ids = self.switch.groups(profile)[group_id]
        all_members = self.switch.members(profile)
        self.switch.group_delete(profile, group_id)
        journal.record(
            lambda: self.switch.group_set(profile, group_id, member_ids, create=True)
        )
        # Newest first, so that a rollback re-creates the members in their original order
        # (the executor orders a group's members by creation).
        for member_id in reversed(member_ids):
            action, args = all_members[member_id]
            self.switch.member_delete(profile, member_id)
            journal.record(
                lambda m=member_id, a=action, p=args: self.switch.member_add(profile, m, a, p)
            )
