"""The rule for missing components: skip on a developer's machine, fail in CI."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from tests.support.components import require_component


def test_an_available_component_neither_skips_nor_fails():
    require_component("prometheus", True, "apt-get install prometheus")


def test_missing_component_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("MLCHAOS_REQUIRE_COMPONENTS", raising=False)
    with pytest.raises(Skipped, match="apt-get install prometheus"):
        require_component("prometheus", False, "apt-get install prometheus")


def test_missing_component_fails_in_ci(monkeypatch):
    monkeypatch.setenv("MLCHAOS_REQUIRE_COMPONENTS", "1")
    with pytest.raises(Failed, match="never skip"):
        require_component("prometheus", False, "apt-get install prometheus")
