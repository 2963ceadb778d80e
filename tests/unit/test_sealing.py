"""dcia.sealing: AES-GCM sealed tensors, what the tag covers, and the key files."""

from __future__ import annotations

import os
import stat

import pytest

from dcia.sealing import (MAX_SEALED_ELEMS, OVERHEAD, SealError, TensorKeys, is_sealed, new_key,
                          seal, unseal)
from dcia.wire import DCIA, Flag, Status, malformation, peek

KEY = bytes(range(32))


def request(elems=(1, -2, 3, 4), **fields):
    fields = dict(model_id=7, model_version=2, next_layer=1, request_id=99) | fields
    return bytes(DCIA(elems=list(elems), **fields))


def test_a_sealed_tensor_opens_to_the_same_bytes_and_hides_the_elements():
    plain = request(elems=list(range(-8, 8)))
    sealed = seal(plain, KEY)
    assert is_sealed(sealed) and not is_sealed(plain)
    assert len(sealed) == len(plain) + OVERHEAD
    assert plain[16:] not in sealed  # the tensor is not there in the clear
    head = peek(sealed)
    assert (head.model_id, head.model_version, head.request_id) == (7, 2, 99)
    assert malformation(sealed) is None  # still a well-formed DCIA datagram for the switches
    assert unseal(sealed, KEY) == plain


def test_two_seals_of_one_tensor_differ():
    assert seal(request(), KEY) != seal(request(), KEY)  # random nonces


@pytest.mark.parametrize("offset, what", [
    (2, "model id"), (4, "model version"), (6, "next layer"), (8, "request id"),
    (16, "nonce"), (20, "ciphertext"), (-1, "tag"),
])
def test_a_changed_header_field_or_byte_does_not_authenticate(offset, what):
    sealed = bytearray(seal(request(), KEY))
    sealed[offset] ^= 0x01
    with pytest.raises(SealError, match="does not authenticate"):
        unseal(bytes(sealed), KEY)


def test_a_request_cannot_be_turned_into_an_answer():
    sealed = bytearray(seal(request(), KEY))
    sealed[1] |= Flag.RESULT
    with pytest.raises(SealError, match="does not authenticate"):
        unseal(bytes(sealed), KEY)


def test_what_a_switch_may_write_on_a_passing_packet_is_not_covered():
    sealed = bytearray(seal(request(), KEY))
    sealed[1] |= Flag.MALFORMED
    sealed[7] = 3                  # net_layers
    sealed[14] = Status.MALFORMED  # status
    opened = unseal(bytes(sealed), KEY)
    assert opened[16:] == request()[16:]


def test_the_wrong_key_or_a_short_payload_is_refused():
    sealed = seal(request(), KEY)
    with pytest.raises(SealError, match="does not authenticate"):
        unseal(sealed, new_key())
    with pytest.raises(SealError, match="shorter than the header"):
        unseal(sealed[:30], KEY)
    with pytest.raises(SealError, match="not sealed"):
        unseal(request(), KEY)
    with pytest.raises(SealError, match="sealed already"):
        seal(sealed, KEY)
    with pytest.raises(SealError, match="32 bytes"):
        seal(request(), KEY[:16])


def test_only_a_well_formed_tensor_that_fits_can_be_sealed():
    with pytest.raises(SealError, match="only a well-formed tensor"):
        seal(request()[:-1], KEY)
    assert peek(seal(request([0] * MAX_SEALED_ELEMS), KEY)).n_elems == 1024
    with pytest.raises(SealError, match=f"at most {MAX_SEALED_ELEMS}"):
        seal(request([0] * (MAX_SEALED_ELEMS + 1)), KEY)


def test_key_files_are_private_and_checked(tmp_path):
    path = TensorKeys({"10.0.2.2": KEY}).save(tmp_path / "h1.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keys = TensorKeys.load(path)
    assert "10.0.2.2" in keys and unseal(keys.seal(request(), "10.0.2.2"), KEY) == request()
    with pytest.raises(SealError, match="no tensor key for 10.0.9.9"):
        keys.seal(request(), "10.0.9.9")
    (tmp_path / "bad.json").write_text('{"10.0.2.2": "abcd"}')
    with pytest.raises(SealError, match="is 2 bytes"):
        TensorKeys.load(tmp_path / "bad.json")
    with pytest.raises(SealError, match="No such file"):
        TensorKeys.load(tmp_path / "none.json")
