"""P4Runtime `Action` messages <-> the executor's (action name, argument list).

    name, args = decode_action(schema, table.action_scopes, msg, where="table 'acl'")
    msg = encode_action(schema, name, args)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from finsy.proto import p4i, p4r

from embedded_switch.p4runtime.codec import decode_uint, encode_uint
from embedded_switch.p4runtime.schema import Schema
from embedded_switch.p4runtime.status import Code, P4RuntimeError, invalid, permission_denied


def decode_action(
    schema: Schema,
    scopes: Mapping[int, int],
    msg: p4r.Action,
    *,
    where: str,
    default: bool = False,
) -> tuple[str, list[int]]:
    """Check an Action against the actions allowed at `where` and decode its parameters.

    `scopes` maps the allowed action ids to their P4Info scope; a TABLE_ONLY action as
    default action (or DEFAULT_ONLY as an entry's) is PERMISSION_DENIED, as the spec says.
    """
    action = schema.actions[msg.action_id]
    if msg.action_id not in scopes:
        raise invalid(f"action '{action.name}' is not an action of {where}")
    if not action.in_json:
        raise invalid(f"action '{action.name}' of {where} is in the P4Info but not in the BMv2 JSON")
    scope = scopes[msg.action_id]
    if default and scope == p4i.ActionRef.TABLE_ONLY:
        raise permission_denied(
            f"action '{action.name}' of {where} is @tableonly and cannot be the default action"
        )
    if not default and scope == p4i.ActionRef.DEFAULT_ONLY:
        raise permission_denied(
            f"action '{action.name}' of {where} is @defaultonly and cannot be used in an entry"
        )
    given: dict[int, bytes] = {}
    known = {p.id for p in action.params}
    for param in msg.params:
        if param.param_id not in known:
            raise invalid(f"action '{action.name}' has no parameter with id {param.param_id}")
        if param.param_id in given:
            raise invalid(f"parameter id {param.param_id} of '{action.name}' is given twice")
        given[param.param_id] = param.value
    args = []
    for p in action.params:
        if p.id not in given:
            raise invalid(f"parameter '{p.name}' of action '{action.name}' is missing")
        what = f"parameter '{p.name}' of '{action.name}'"
        args.append(decode_uint(given[p.id], p.bitwidth, what))
    return action.name, args


def encode_action(schema: Schema, name: str, args: Sequence[int]) -> p4r.Action:
    """The Action message for an executor action and its arguments."""
    try:
        action = schema.actions[schema.action_ids[name]]
    except KeyError:
        raise P4RuntimeError(
            Code.INTERNAL, f"the switch holds action '{name}', which the P4Info does not have"
        ) from None
    return p4r.Action(
        action_id=action.id,
        params=[
            p4r.Action.Param(param_id=p.id, value=encode_uint(v))
            for p, v in zip(action.params, args)
        ],
    )
