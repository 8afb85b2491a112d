"""The tests exercise the INSTALLED package (`pip install '.[test]'`): in the source tree
`codemods/` is not yet `flask_refactor.codemods`, so the repository root must not shadow
the installed `flask_refactor` (as `python -m pytest` run from the root would make it)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]

import os  # noqa: E402
import tempfile  # noqa: E402

# The index and result caches of the whole test run live in one throwaway directory (CLI
# subprocesses inherit it): tests neither read nor fill the user's ~/.cache.
os.environ.setdefault("FLASK_REFACTOR_CACHE_DIR", tempfile.mkdtemp(prefix="flask-refactor-test-cache-"))
os.environ.pop("FLASK_REFACTOR_NO_CACHE", None)
