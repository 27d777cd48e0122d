"""Root test configuration: the golden-file rewrite switch.

``pytest --update-golden`` and ``TRELLIS_UPDATE_GOLDEN=1`` mean the same thing:
golden tests rewrite their files instead of comparing (STYLE.md §6; read the diff
before keeping it). The option sets the environment variable, so tests that read
only the variable see it too; ``update_golden`` is the fixture form.
"""

from __future__ import annotations

import os

import pytest

UPDATE_GOLDEN_ENV = "TRELLIS_UPDATE_GOLDEN"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help=f"rewrite golden files instead of comparing them (same as {UPDATE_GOLDEN_ENV}=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--update-golden"):
        os.environ[UPDATE_GOLDEN_ENV] = "1"


def updating_golden() -> bool:
    return os.environ.get(UPDATE_GOLDEN_ENV, "") not in ("", "0")


@pytest.fixture()
def update_golden() -> bool:
    """True when golden files should be rewritten rather than compared."""
    return updating_golden()
