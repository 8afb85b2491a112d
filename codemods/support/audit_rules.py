"""The audit rules: production pitfalls of Flask apps that a codemod cannot (or should
not) rewrite, each with a stable id, and the codemods' own findings under stable ids.

`rules()` is what `flask-refactor audit` loads. Ids never change meaning; a retired
rule's id is not reused.
"""

from __future__ import annotations

from flask_refactor.audit import CodemodRule, Rule
from flask_refactor.codemod import Severity

from .audit_config_rules import DebugMode, SecretKey
from .audit_deploy_rules import ProxyFixRule
from .audit_error_rules import ErrorShapes, UnhandledExceptions
from .audit_upgrade_rules import RemovedApi
from .audit_view_rules import AsyncView, BlockingCallInView, NPlusOne, StateChangeOnGet


# The codemods' findings and pending rewrites, under stable ids. A codemod not listed
# here (a plugin) reports under `codemod/<name>`.
CODEMOD_RULES: dict[str, tuple[str, Severity]] = {
    "teardown": ("FR201", Severity.WARNING),
    "globals-to-g": ("FR202", Severity.WARNING),
    "thread-context": ("FR203", Severity.WARNING),
    "error-handling": ("FR204", Severity.INFO),
    "app-factory": ("FR205", Severity.INFO),
    "extract-services": ("FR206", Severity.INFO),
}


def rules() -> list[Rule]:
    from flask_refactor import registry

    found: list[Rule] = [DebugMode(), SecretKey(), StateChangeOnGet(), BlockingCallInView(), AsyncView(),
                         NPlusOne(), ProxyFixRule(), RemovedApi(), UnhandledExceptions(), ErrorShapes()]
    for name, cls in registry.all_codemods().items():
        rule_id, severity = CODEMOD_RULES.get(name, (f"codemod/{name}", Severity.INFO))
        found.append(CodemodRule(cls, rule_id, severity))
    return found
