"""The command line: list, explain, diff, apply, check.

Exit codes (as ruff and django-upgrade use them): 0 nothing to do or done; 1 changes
pending (check, diff, --dry-run) or findings that need a human; 2 usage, configuration
or input errors.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from . import __version__, config, git, index, pipeline, registry, report
from .codemod import Codemod, Severity

EXIT_OK, EXIT_PENDING, EXIT_ERROR = 0, 1, 2
PROGRESS_MIN_FILES = 50


def fail(message: str) -> "click.exceptions.Exit":
    click.echo(f"flask-refactor: error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flask-refactor")
def main() -> None:
    """Rewrite legacy Flask apps into the shape Flask recommends, reviewably.

    Review with `diff` (or `apply --dry-run`), write with `apply`, gate CI with `check`.
    """


def entry() -> None:
    """The `flask-refactor` command: `main`, then an exit that skips tearing the
    interpreter down, as mypy's does. Freeing a large run's trees one object at a
    time took a tenth of the run; the output is flushed first and every file and
    worker pool was closed by then."""
    try:
        main.main(prog_name="flask-refactor")
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        click.echo(code, err=True)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe (`| head`): nothing more can be said
            pass
    os._exit(code or 0)


def _codemods_or_fail() -> dict[str, type[Codemod]]:
    try:
        return registry.all_codemods()
    except registry.RegistryError as exc:
        fail(str(exc))


@main.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_command(fmt: str) -> None:
    """List the codemods, one line each, in the order --all runs them."""
    codemods = _codemods_or_fail()
    if fmt == "json":
        click.echo(json.dumps([{"name": c.name, "summary": c.summary, "safety": c.safety, "order": c.order}
                               for c in codemods.values()], indent=2))
        return
    width = max((len(name) for name in codemods), default=0)
    for name, cls in codemods.items():
        marker = "" if cls.safety == "safe" else f" [{cls.safety}]"
        click.echo(f"{name.ljust(width)}  {cls.summary}{marker}")


@main.command()
@click.argument("name")
def explain(name: str) -> None:
    """Explain a codemod: what it does, its options, a before/after example."""
    codemods = _codemods_or_fail()
    if name not in codemods:
        fail(f"unknown codemod {name!r} (known: {', '.join(codemods)})")
    cls = codemods[name]
    click.echo(f"{cls.name}: {cls.summary}\n")
    click.echo(f"Fix safety: {cls.safety}")
    if cls.options:
        click.echo("Options (pyproject [tool.flask-refactor.%s] or --option %s.KEY=VALUE):" % (cls.name, cls.name))
        for option in cls.options:
            click.echo(f"  {option.name.replace('_', '-')} ({option.type.__name__}, default {option.default!r}): {option.help}")
    click.echo("")
    click.echo(cls.explain.rstrip())


# -- diff / apply / check --------------------------------------------------------------

@dataclass
class RunOptions:
    paths: tuple[str, ...]
    codemods: tuple[str, ...]
    all_codemods: bool
    options: tuple[str, ...]
    exclude: tuple[str, ...]
    jobs: int | None
    fmt: str
    no_color: bool
    no_cache: bool


def _switch_off_cache(ctx, param, value: bool) -> bool:
    if value:  # in the environment, so that worker processes (batch, verify) see it too
        os.environ[index.NO_CACHE_ENV] = "1"
    return value


def run_options(func):
    decorators = [
        click.argument("paths", nargs=-1, type=click.Path(path_type=str)),
        click.option("--codemod", "-c", "codemods", multiple=True, metavar="NAME",
                     help="Codemod to run (repeatable, or comma-separated)."),
        click.option("--all", "all_codemods", is_flag=True, help="Run every codemod, in their sensible order."),
        click.option("--option", "-o", "options", multiple=True, metavar="CODEMOD.KEY=VALUE",
                     help="Set a codemod option (overrides pyproject.toml)."),
        click.option("--exclude", multiple=True, metavar="GLOB", help="Skip paths matching this gitignore-style pattern."),
        click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                     help="Worker processes [default: the machine's cores]."),
        click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True),
        click.option("--no-color", is_flag=True, help="No colour (NO_COLOR is honoured too)."),
        click.option("--no-cache", is_flag=True, callback=_switch_off_cache, expose_value=True,
                     help="Neither read nor write the cache (file index and run results)."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@main.command()
@run_options
def diff(**kwargs) -> None:
    """Show what `apply` would write, as a unified diff (same as `apply --dry-run`)."""
    raise click.exceptions.Exit(_execute("diff", RunOptions(**kwargs), dry_run=True, allow_dirty=True))


@main.command()
@run_options
@click.option("--dry-run", is_flag=True, help="Show the diff; write nothing.")
@click.option("--allow-dirty", is_flag=True, help="Write even over files with uncommitted git changes.")
@click.option("--interactive", "-i", is_flag=True,
              help="Review each change (keys as in `git add -p`; ? for help); write only what you accept.")
@click.option("--verify", "verify_command", metavar="CMD",
              help="Run CMD (your tests, in the current directory) before, then after each codemod; "
                   "a codemod that breaks them is rolled back.")
@click.option("--verify-timeout", type=click.FloatRange(min=1), default=600.0, show_default=True, metavar="SECONDS",
              help="Give up on a --verify run after this long (counts as a failure).")
def apply(dry_run: bool, allow_dirty: bool, interactive: bool, verify_command: str | None,
          verify_timeout: float, **kwargs) -> None:
    """Rewrite the files (validated first; atomic writes)."""
    opts = RunOptions(**kwargs)
    if interactive or verify_command:
        from . import cli_apply

        if dry_run:
            fail("--dry-run cannot be combined with --interactive or --verify")
        if not verify_command:
            raise click.exceptions.Exit(cli_apply.run_interactive(opts, allow_dirty))
        raise click.exceptions.Exit(cli_apply.run_verified(opts, allow_dirty, verify_command, verify_timeout,
                                                           interactive))
    raise click.exceptions.Exit(_execute("apply", opts, dry_run=dry_run, allow_dirty=allow_dirty))


@main.command()
@run_options
def check(**kwargs) -> None:
    """Exit 1 when a codemod would change something (for CI); prints only the summary."""
    raise click.exceptions.Exit(_execute("check", RunOptions(**kwargs), dry_run=True, allow_dirty=True, show_diff=False))


def prepare(opts: RunOptions) -> tuple[list[str], list[Codemod], config.Settings]:
    """Paths, codemod instances and settings for a run; exits 2 on bad input."""
    known = _codemods_or_fail()
    paths = list(opts.paths) or ["."]
    try:
        settings = config.load(Path(paths[0]), set(known))
    except config.ConfigError as exc:
        fail(str(exc))
    return paths, _select(known, opts, settings), settings


def _execute(command: str, opts: RunOptions, *, dry_run: bool, allow_dirty: bool, show_diff: bool = True) -> int:
    paths, codemods, settings = prepare(opts)
    out, err = report.consoles(opts.no_color)
    with _progress(err) as progress:
        result = pipeline.run(paths, codemods, excludes=[*settings.exclude, *opts.exclude],
                              jobs=opts.jobs or settings.jobs, progress=progress)
    applied = False
    if dry_run:
        pipeline.write_problems(result)
    elif result.outcomes:
        dirty = [] if allow_dirty else _dirty(result)
        if dirty:
            names = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            fail(f"uncommitted changes in {names}: commit or stash them first (git is your undo), "
                 "or pass --allow-dirty")
        pipeline.apply(result)
        applied = True
    code = _exit_code(result, pending=dry_run and result.changed)
    if opts.fmt == "json":
        click.echo(report.as_json(result, command, applied, code))
        return code
    if show_diff and (dry_run or command == "diff"):
        report.print_diffs(result, out)
    report.print_findings_and_errors(result, err)
    err.print(report.summary_line(result, dry_run), soft_wrap=True, markup=False)
    return code


def _select(known: dict[str, type[Codemod]], opts: RunOptions, settings: config.Settings) -> list[Codemod]:
    names = [n.strip() for raw in opts.codemods for n in raw.split(",") if n.strip()]
    if opts.all_codemods:
        if names:
            fail("pass either --codemod or --all, not both")
        names = list(known)
    if not names:
        names = settings.codemods
    if not names:
        fail("no codemod selected: pass --codemod NAME (see `flask-refactor list`) or --all")
    for name in names:
        if name not in known:
            fail(f"unknown codemod {name!r} (known: {', '.join(known)})")
    options = {name: dict(values) for name, values in settings.codemod_options.items()}
    for raw in opts.options:
        target, sep, value = raw.partition("=")
        codemod, dot, key = target.partition(".")
        if not sep or not dot or not key:
            fail(f"--option {raw!r}: expected CODEMOD.KEY=VALUE")
        if codemod not in known:
            fail(f"--option {raw!r}: unknown codemod {codemod!r}")
        options.setdefault(codemod, {})[key.replace("-", "_")] = value
    selected = sorted(dict.fromkeys(names), key=lambda n: list(known).index(n))
    try:
        return [known[name](**options.get(name, {})) for name in selected]
    except ValueError as exc:
        fail(str(exc))


def _dirty(result: pipeline.RunResult) -> list[str]:
    targets = {}
    for outcome in result.outcomes:
        file = result.project.file(outcome.path)
        if file.real is not None:
            targets[file.real] = outcome.path
    return sorted(targets[path] for path in git.dirty_files(list(targets)))


def _exit_code(result: pipeline.RunResult, pending: bool) -> int:
    if len(result.errors):
        return EXIT_ERROR
    if pending or any(f.severity.rank >= Severity.WARNING.rank for f in result.findings):
        return EXIT_PENDING
    return EXIT_OK


class _progress:
    """A progress bar on stderr for long runs on a terminal; nothing otherwise."""

    def __init__(self, err) -> None:
        self.err = err
        self.bar = None  # a rich Progress, imported when first shown (a tenth of the import time)
        self.task = None

    def __enter__(self):
        return self.update if self.err.is_terminal else None

    def update(self, label: str, done: int, total: int) -> None:
        if total < PROGRESS_MIN_FILES:
            return
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)
        self.bar.update(self.task, completed=done, total=total, description=label)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


# Commands kept in their own modules register themselves on `main` when imported.
from . import cli_audit, cli_batch  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
