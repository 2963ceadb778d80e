"""The examples in the modules' docstrings run as written."""

import doctest

import pytest

from embedded_switch.p4runtime import codec, journal, packet_io, status


@pytest.mark.parametrize("module", [codec, journal, packet_io, status], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
