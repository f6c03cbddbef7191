"""The suite runs against the package as users install it: the built wheel, not the checkout.

`scripts/test.sh` installs the wheel into a fresh virtual environment and runs these tests
from a copy outside the checkout, with SOURCE_CHECKOUT naming the checkout.
"""

import os
from pathlib import Path

import pytest

import gemini_tasks

SOURCE = os.environ.get("SOURCE_CHECKOUT")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not SOURCE, reason="runs on the installed wheel, from scripts/test.sh"),
]


def test_the_tests_import_the_installed_package():
    installed = Path(gemini_tasks.__file__).resolve().parent
    assert not installed.is_relative_to(Path(str(SOURCE)).resolve()), installed


def test_the_installed_package_has_every_file_of_the_source():
    source = Path(str(SOURCE)) / "gemini_tasks"
    installed = Path(gemini_tasks.__file__).resolve().parent
    files = [p.relative_to(source) for p in source.rglob("*") if p.is_file()]
    files = [f for f in files if "__pycache__" not in f.parts]
    missing = [str(f) for f in files if not (installed / f).exists()]
    assert not missing, f"the wheel lacks {missing}"
