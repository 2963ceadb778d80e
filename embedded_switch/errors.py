"""Errors of the embedded switch: one small hierarchy, messages that say what to fix.

>>> isinstance(NotFound("table 'ingress.t' has no entry with handle 7"), SwitchError)
True
"""


class SwitchError(Exception):
    """Base of every error the switch raises on purpose."""


class PipelineError(SwitchError):
    """The BMv2 JSON was refused; the message names the construct and where it is."""


class NotFound(SwitchError):
    """Unknown table, action, entry, member, group, index or session."""


class AlreadyExists(SwitchError):
    """The object (entry, member, group) is already there."""


class InvalidArgument(SwitchError):
    """Bad key shape or kind, value wider than its field, action not in table, bad priority..."""


class ResourceExhausted(SwitchError):
    """The table or action profile is full."""


class Unimplemented(SwitchError):
    """Valid request that this switch does not support."""
