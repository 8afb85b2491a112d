"""No-op codemods for the benchmark: each parses the files that mention Flask and
returns them unchanged. Loaded through FLASK_REFACTOR_PLUGINS, never shipped."""

import libcst as cst

from flask_refactor.codemod import FileCodemod, FileContext


class _NoOp(FileCodemod):
    summary = "benchmark: parse and change nothing"
    explain = "Benchmark only."
    needles = ("flask", "Flask")

    def transform(self, module: cst.Module, ctx: FileContext) -> cst.Module:
        return module


class NoOpA(_NoOp):
    name = "bench-noop-a"


class NoOpB(_NoOp):
    name = "bench-noop-b"


class NoOpC(_NoOp):
    name = "bench-noop-c"


class NoOpEveryFile(_NoOp):
    """No prefilter: parses every file, to compare the raw pipeline with libcst's."""

    name = "bench-noop-every-file"
    needles = ()
