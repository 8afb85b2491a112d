"""Parsing the code codemods write: each text once per process, copied after.

A codemod writes the same statements into many modules of an app (an import line, a
helper function, an error handler with only one line that differs), and a libcst parse
of a generated function costs about five times making a copy of its tree from a pickle
(`transfer`): on the benchmark's big app, parses of generated code were 8% of a
serial run. So the first parse of a text keeps the pickle of its tree, and later calls
load a new copy from it. Every call returns a tree of its own, as a parse does: one
node object of code must never sit in two places of a tree, which analyses keyed by node
(parent maps, positions) would mistake for one. (Its whitespace leaves are shared, as in
every tree `transfer` loads: no analysis keys those.)
"""

from __future__ import annotations

from collections import OrderedDict

import libcst as cst

from . import transfer

transfer.install()  # the pickles kept here are of trees: written the fast way

# (code, parser config) -> the pickled tree: the texts of a run's generated code, bounded
# for a process that runs on many projects (`batch`)
_PARSED: OrderedDict[tuple[str, cst.PartialParserConfig], bytes] = OrderedDict()
_KEPT = 512
_DEFAULT_CONFIG = cst.PartialParserConfig()


def parse_statement(code: str, config: cst.PartialParserConfig = _DEFAULT_CONFIG) -> cst.BaseStatement:
    """`libcst.parse_statement(code, config)`, a copy of the earlier parse when there was one."""
    key = (code, config)
    data = _PARSED.get(key)
    if data is not None:
        _PARSED.move_to_end(key)
        return transfer.loads(data)
    statement = cst.parse_statement(code, config)
    _PARSED[key] = transfer.dumps(statement)
    if len(_PARSED) > _KEPT:
        _PARSED.popitem(last=False)
    return statement
