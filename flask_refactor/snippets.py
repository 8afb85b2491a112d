"""Parsing the code codemods write: a text asked for again and again is copied, not parsed.

A codemod writes the same statements into many modules of an app (an import line, a
helper function, an error handler with only one line that differs), and a libcst parse
of a generated function costs about five times making a copy of its tree from a pickle
(`transfer`): on the benchmark's big app, parses of generated code were 8% of a
serial run. So a text asked for again is parsed a second time and the pickle of that
tree kept, and later calls load a new copy from it. Not the first time: most texts are
asked for once (a blueprint line, a service call or an error handler's `converted` line
names one module's things: 396 of the 402 texts of a `--all` run on the big app), and
pickling those trees was a fifth of the time spent on generated code. Every call
returns a tree of its own, as a parse does: one
node object of code must never sit in two places of a tree, which analyses keyed by node
(parent maps, positions) would mistake for one. (Its whitespace leaves are shared, as in
every tree `transfer` loads: no analysis keys those.)
"""

from __future__ import annotations

from collections import OrderedDict

import libcst as cst

from . import transfer

transfer.install()  # the pickles kept here are of trees: written the fast way

# (code, parser config) -> the pickled tree, or None for a text parsed once so far: the
# texts of a run's generated code, bounded for a process that runs on many projects (`batch`)
_PARSED: OrderedDict[tuple[str, cst.PartialParserConfig], bytes | None] = OrderedDict()
_KEPT = 512
_DEFAULT_CONFIG = cst.PartialParserConfig()
# a module's settings (encoding, indent, newline) -> the parser config for code written in them
_CONFIGS: dict[tuple[str, str, str], cst.PartialParserConfig] = {}


def parsing_config(module: cst.Module) -> cst.PartialParserConfig:
    """`module.config_for_parsing`, one object per module settings: libcst makes a new
    config, and checks it, on each call (40 us: 1,179 calls were 48 ms of a serial `--all`
    run on the benchmark's big app). A config is immutable, so one can serve every call."""
    key = (module.encoding, module.default_indent, module.default_newline)
    config = _CONFIGS.get(key)
    if config is None:
        config = _CONFIGS[key] = module.config_for_parsing
    return config


def parse_statement(code: str, config: cst.PartialParserConfig = _DEFAULT_CONFIG) -> cst.BaseStatement:
    """`libcst.parse_statement(code, config)`, a copy of an earlier parse when the text
    was asked for twice before."""
    key = (code, config)
    if key not in _PARSED:
        _PARSED[key] = None
        if len(_PARSED) > _KEPT:
            _PARSED.popitem(last=False)
        return cst.parse_statement(code, config)
    _PARSED.move_to_end(key)
    data = _PARSED[key]
    if data is not None:
        return transfer.loads(data)
    statement = cst.parse_statement(code, config)
    _PARSED[key] = transfer.dumps(statement)
    return statement
