"""The examples in the docstrings of the shared modules run and are right."""

import doctest
import importlib

import pytest

MODULES = ["dcia.arithmetic", "dcia.wire", "dcia.layers", "dcia.targets", "controller.entries"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
