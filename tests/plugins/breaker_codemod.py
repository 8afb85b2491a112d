"""A test-only codemod that breaks a project's test suite on purpose.

Loaded only by tests, through `FLASK_REFACTOR_PLUGINS=breaker_codemod:BreakTests` with this
directory on PYTHONPATH: it is never part of the product. It bumps every integer assigned
on a line marked `# break-tests: target` and creates `sabotage/NOTES.txt`, so a rollback
has both a modified and a created file (in a new directory) to undo. With the option
`unit=true` its changes form one unit change set (reviewed as one); with `invalid=true`
it also creates a Python file that does not parse (which must never be offered or written).
"""

from __future__ import annotations

import libcst as cst

from flask_refactor.codemod import ChangeSet, Codemod, Option
from flask_refactor.project import Project

MARKER = "break-tests: target"
CREATED = "sabotage/NOTES.txt"
INVALID = "sabotage/broken.py"


class _Bump(cst.CSTTransformer):
    def leave_SimpleStatementLine(self, original, updated):
        comment = updated.trailing_whitespace.comment
        if comment is None or MARKER not in comment.value:
            return updated
        body = []
        for statement in updated.body:
            if isinstance(statement, cst.Assign) and isinstance(statement.value, cst.Integer):
                statement = statement.with_changes(value=cst.Integer(str(int(statement.value.value) + 1)))
            body.append(statement)
        return updated.with_changes(body=body)


class BreakTests(Codemod):
    name = "break-tests"
    summary = "Bump marked constants (test-only: breaks test suites on purpose)."
    order = 900
    needles = (MARKER,)
    explain = "Test-only codemod used to prove that --verify rolls back a breaking step.\n"
    options = (Option("unit", bool, False, "Mark the change set as one unit."),
               Option("invalid", bool, False, "Also create a Python file that does not parse."))

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        changes.unit = self.config["unit"]
        for path, module in project.modules(self.needles):
            new = module.visit(_Bump())
            if new.code != module.code:
                changes.modify(path, new, "bump the marked constant")
                changes.create(CREATED, "created by break-tests\n", "leave a note")
                if self.config["invalid"]:
                    changes.create(INVALID, "def broken(:\n", "write code that cannot be right")
        return changes
