"""The examples in docstrings run and print what they show.

Examples that need a database or a cluster are marked ``+SKIP`` in the docstrings; the rest run here.
"""

import doctest
import importlib
import pkgutil

import pytest

import dasktrain
import loaders

MODULES = sorted(
    info.name
    for package in (dasktrain, loaders)
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_examples_actually_run_somewhere():
    attempted = sum(doctest.testmod(importlib.import_module(n), verbose=False).attempted for n in MODULES)
    assert attempted >= 30
