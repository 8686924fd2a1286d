"""Helpers of the tests, imported by their full name (``from tests.support.components import require_component``).

paths        the repository's folders (ROOT, TESTS, TEST_DRIVERS, ...), instead of ``Path(__file__).parents[2]``
environment  ``child_env``: the environment of a child process (``mlchaos`` CLI, watchdogs) that can import
             this repository and the test drivers; the ``subprocess_env`` fixture (tests/conftest.py) wraps it
components   ``require_component``: a test that needs a binary or service skips on a developer machine and
             fails in CI (MLCHAOS_REQUIRE_COMPONENTS=1)
proxy_process ``start_proxy``: a real fault proxy process (``python -m mlchaos.proxy``) on free ports, with the
             API token given (never one from the worker's environment) or none

The test drivers (the Python provider ``module: testdrivers``) are not here: they live in tests/drivers, a
folder on sys.path, so that the module has one name only.
"""
