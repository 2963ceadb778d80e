"""Client arbitration follows the spec: highest election id ever seen is primary."""

import pytest
from finsy.proto import p4r

from embedded_switch.p4runtime.arbitration import MAX_CONTROLLERS, Arbitration, Controller
from embedded_switch.p4runtime.status import Code, P4RuntimeError

DEVICE = 1


class Inbox(list):
    """A controller's received arbitration notices, as (status code, election id)."""

    def __call__(self, msg):
        update = msg.arbitration
        eid = (update.election_id.high << 64 | update.election_id.low) if update.HasField("election_id") else None
        self.append((update.status.code, eid))


def controller():
    return Controller(send=Inbox())


def update(election_id=None, device_id=DEVICE, role=None):
    msg = p4r.MasterArbitrationUpdate(device_id=device_id)
    if election_id is not None:
        msg.election_id.low = election_id
    if role is not None:
        msg.role.name = role
    return msg


def test_first_controller_becomes_primary_and_is_told_so():
    arb, a = Arbitration(DEVICE), controller()
    arb.arbitrate(a, update(10))
    assert a.send == [(Code.OK, 10)]
    assert arb.may_write(10) and not arb.may_write(9) and not arb.may_write(None)


def test_lower_election_id_is_a_backup_told_alone():
    arb, a, b = Arbitration(DEVICE), controller(), controller()
    arb.arbitrate(a, update(10))
    arb.arbitrate(b, update(5))
    assert a.send == [(Code.OK, 10)]
    assert b.send == [(Code.ALREADY_EXISTS, 10)]
    assert arb.is_primary(a) and not arb.is_primary(b)


def test_higher_election_id_takes_over_and_everyone_is_notified():
    arb, a, b = Arbitration(DEVICE), controller(), controller()
    arb.arbitrate(a, update(10))
    arb.arbitrate(b, update(20))
    assert a.send[-1] == (Code.ALREADY_EXISTS, 20)
    assert b.send == [(Code.OK, 20)]
    assert not arb.may_write(10) and arb.may_write(20)


def test_when_the_primary_leaves_backups_learn_there_is_no_primary():
    arb, a, b = Arbitration(DEVICE), controller(), controller()
    arb.arbitrate(a, update(10))
    arb.arbitrate(b, update(5))
    arb.leave(a)
    assert b.send[-1] == (Code.NOT_FOUND, 10)
    assert arb.primary() is None and not arb.may_write(5)
    arb.arbitrate(b, update(10))  # the backup bids the highest id seen and wins
    assert b.send[-1] == (Code.OK, 10)


def test_primary_downgrading_itself_notifies_all():
    arb, a, b = Arbitration(DEVICE), controller(), controller()
    arb.arbitrate(a, update(10))
    arb.arbitrate(b, update(5))
    arb.arbitrate(a, update(7))
    assert a.send[-1] == (Code.NOT_FOUND, 10) and b.send[-1] == (Code.NOT_FOUND, 10)


def test_duplicate_election_id_is_invalid_argument():
    arb, a, b = Arbitration(DEVICE), controller(), controller()
    arb.arbitrate(a, update(10))
    with pytest.raises(P4RuntimeError) as info:
        arb.arbitrate(b, update(10))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "election id" in info.value.message and "used" in info.value.message


def test_unset_election_id_never_becomes_primary():
    arb, a = Arbitration(DEVICE), controller()
    arb.arbitrate(a, update(None))
    assert a.send == [(Code.NOT_FOUND, None)]
    assert not arb.may_write(None)


def test_writes_without_election_id_are_allowed_only_while_no_controller_is_connected():
    arb = Arbitration(DEVICE)
    assert arb.may_write(None) and not arb.may_write(1)


@pytest.mark.parametrize(
    ("msg", "code"),
    [(update(1, device_id=2), Code.NOT_FOUND), (update(1, role="sdn"), Code.UNIMPLEMENTED)],
)
def test_wrong_device_or_named_role_ends_the_stream(msg, code):
    with pytest.raises(P4RuntimeError) as info:
        Arbitration(DEVICE).arbitrate(controller(), msg)
    assert info.value.code == code


def test_changing_device_on_a_live_stream_is_failed_precondition():
    arb, a = Arbitration(DEVICE), controller()
    arb.arbitrate(a, update(1))
    with pytest.raises(P4RuntimeError) as info:
        arb.arbitrate(a, update(1, device_id=2))
    assert info.value.code == Code.FAILED_PRECONDITION


def test_controllers_past_the_limit_are_resource_exhausted_until_one_leaves():
    arb = Arbitration(DEVICE)
    controllers = [controller() for _ in range(MAX_CONTROLLERS)]
    for election_id, c in enumerate(controllers, start=1):
        arb.arbitrate(c, update(election_id))
    extra = controller()
    with pytest.raises(P4RuntimeError) as info:
        arb.arbitrate(extra, update(100))
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    arb.arbitrate(controllers[0], update(50))  # a member may still bid again
    arb.leave(controllers[1])
    arb.arbitrate(extra, update(100))
    assert arb.is_primary(extra)
