"""The tests exercise the INSTALLED package (`pip install '.[test]'`): in the source tree
`codemods/` is not yet `flask_refactor.codemods`, so the repository root must not shadow
the installed `flask_refactor` (as `python -m pytest` run from the root would make it)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
