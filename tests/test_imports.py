"""`support.imports.add_imports` writes what libcst's AddImportsVisitor writes (it is
rewritten only to spare every run the import of `libcst.matchers`): compared here on
real modules and on the corners of its rules."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from flask_refactor.codemods.support.imports import add_imports
from helpers import sample_modules

WANTED = [
    [("flask", "g", None)],
    [("logging", None, None)],
    [("os", None, None), ("flask", "jsonify", None), ("flask", "abort", "flask_abort")],
    [("__future__", "annotations", None), ("typing", "Any", None)],
    [("typing", "Optional", None), ("typing", "Any", None), ("json", None, "js"), ("re", None, None)],
    [("collections", "OrderedDict", None), ("os.path", None, None), ("sys", None, None)],
    [("flask", "current_app", None), ("flask", "Flask", "F"), ("flask", "abort", None)],
]

CORNERS = {
    "empty": "",
    "docstring only": '"""Doc."""\n',
    "docstring and code": '"""Doc."""\nx = 1\n',
    "two docstring-like lines": '"""Doc."""; x = 1\nimport os\n',
    "strict flag": "__strict__ = True\nimport os\n\nx = 1\n",
    "comment before code": "import os\n# a comment\nx = 1\n",
    "blank before code": "import os\n\n\nx = 1\n",
    "star import": "from flask import *\nfrom typing import *\n\nx = 1\n",
    "star after names": "from flask import g\nfrom flask import *\n",
    "aliases present": "import json as js\nimport json as other\nfrom flask import abort as flask_abort\n",
    "alias of one module twice": "import json as other\nimport json as js\n",
    "relative imports": "from . import views\nfrom .models import g\nimport os\n",
    "two imports on a line": "import os; import sys\nfrom flask import g\n",
    "imports after code": "x = 1\nfrom flask import g\nimport logging\n",
    "parenthesized": "from flask import (\n    request,\n    g,\n)\n\napp = 1\n",
    "trailing comma": "from typing import (Any,)\n",
    "future present": "from __future__ import annotations\n\nimport os\n",
    "nested imports": "def f():\n    from flask import g\n    import logging\n",
    "crlf": "import os\r\n\r\nx = 1\r\n",
    "tabs": "import os\nif x:\n\tfrom flask import g\n",
    "dotted module": "import os.path\nfrom os import path\n",
}


def libcst_adds(module: cst.Module, wanted) -> str:
    context = CodemodContext()
    for source, name, asname in wanted:
        AddImportsVisitor.add_needed_import(context, source, name, asname)
    return AddImportsVisitor(context).transform_module(module).code


@pytest.mark.parametrize("name", sorted(CORNERS))
def test_corners_as_libcst_writes_them(name):
    module = cst.parse_module(CORNERS[name])
    for wanted in WANTED:
        assert add_imports(module, wanted).code == libcst_adds(module, wanted), (name, wanted)


def test_real_modules_as_libcst_writes_them():
    # libcst's side copies and walks each module: one list, asking for every kind
    everything = [("__future__", "annotations", None), ("os", None, None), ("json", None, "js"),
                  ("typing", "Any", None), ("typing", "Optional", "Opt"), ("flask", "g", None)]
    modules = sample_modules(("flask", "click"))
    assert len(modules) >= 40
    for path, module in modules:
        assert add_imports(module, everything).code == libcst_adds(module, everything), path


def test_nothing_to_add_leaves_the_module_as_it_is():
    module = cst.parse_module(textwrap.dedent("""\
        import logging
        from flask import g, jsonify
    """))
    assert add_imports(module, [("flask", "g", None), ("logging", None, None)]) is module


def test_the_head_and_last_name_of_a_node_are_those_of_its_full_name():
    """`ImportMap.resolve` and globals-to-g's setattr test look only at one end of a
    dotted name: the same end `get_full_name_for_node` would give."""
    from libcst.helpers import get_full_name_for_node

    from flask_refactor.codemods.support.imports import head_name, last_name
    from flask_refactor.walk import iter_nodes
    from helpers import sample_modules

    kinds = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Decorator, cst.FunctionDef, cst.Lambda)
    checked = 0
    for where, module in sample_modules(("flask", "werkzeug")):
        for node in iter_nodes(module):
            if isinstance(node, kinds):
                full = get_full_name_for_node(node)
                assert head_name(node) == (None if full is None else full.partition(".")[0]), where
                if not isinstance(node, (cst.Decorator, cst.FunctionDef)):
                    assert last_name(node) == (None if full is None else full.rpartition(".")[2]), where
                checked += 1
    assert checked > 10000
