"""The test suite. A package so that its helpers import by their full name: ``from tests.support.polling import poll``
(the repository root is on sys.path through pyproject's ``[tool.pytest.ini_options] pythonpath``)."""
