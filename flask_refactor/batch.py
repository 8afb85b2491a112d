"""Migrating many repositories: one branch each, one commit per codemod, verified.

For each repository: refuse a dirty tree, create (or resume) the branch, apply the
codemods one step at a time (`verify.apply_in_steps`: a step that breaks a passing test
suite is rolled back), commit each kept step with a message saying what and why, and
record the outcome. Repositories run in worker processes, each in its own directory;
the coordinator only collects status lines and reports. One repository's failure never
stops the others.

A finished repository is remembered in `<git dir>/flask-refactor/batch.json` with the
commit its branch ended on, so a rerun skips it while that branch is unchanged. The
pull-request description goes beside it, as `<git dir>/flask-refactor/<branch>.md`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import config, registry, verify
from .codemod import Codemod, Severity
from .verify import DEFAULT_TIMEOUT as DEFAULT_VERIFY_TIMEOUT

DEFAULT_BRANCH = "flask-refactor"
STATE_DIR = "flask-refactor"
STATE_FILE = "batch.json"
REPORT_VERSION = 1

# Final states of a repository.
MIGRATED = "migrated"  # every change kept
PARTIAL = "partial"  # some step rolled back
UNCHANGED = "unchanged"  # nothing to change (findings may still need a human)
SKIPPED = "skipped"  # already done on its branch by an earlier run
REFUSED = "refused"  # dirty tree, not a repository
FAILED = "failed"  # git or the engine failed

Status = Callable[[str, str], None]  # (state, detail)


class BatchError(Exception):
    pass


@dataclass(frozen=True)
class RepoSpec:
    path: Path
    verify: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class BatchOptions:
    codemods: tuple[str, ...]
    branch: str = DEFAULT_BRANCH
    commit: bool = False
    verify: str | None = None  # default command; a manifest entry's own wins
    verify_timeout: float = DEFAULT_VERIFY_TIMEOUT


# -- what to migrate ----------------------------------------------------------------

def targets(arguments: list[str]) -> list[RepoSpec]:
    """Repositories named by manifests (TOML or plain lines) and directories."""
    specs: list[RepoSpec] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            specs.extend(read_manifest(path))
        elif path.is_dir():
            specs.extend(_checkouts(path))
        else:
            raise BatchError(f"{argument}: no such manifest or directory")
    unique: dict[Path, RepoSpec] = {}
    for spec in specs:
        unique.setdefault(spec.path, spec)
    names = [s.name for s in unique.values()]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise BatchError(f"two repositories are named {clashes[0]!r}: rename a checkout so reports stay apart")
    return list(unique.values())


def read_manifest(path: Path) -> list[RepoSpec]:
    """TOML (`[[repo]]` tables with `path` and optional `verify`) or one path per line,
    optionally followed by `|` and that repository's verify command. Relative paths are
    relative to the manifest; `#` starts a comment line."""
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"{path}: cannot read manifest: {exc}") from None
    if path.suffix == ".toml":
        return _toml_manifest(path, text, base)
    specs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        location, _, command = line.partition("|")
        if not location.strip():
            raise BatchError(f"{path}:{number}: expected a repository path")
        specs.append(RepoSpec(_resolve(base, location.strip()), command.strip() or None))
    return specs


def _toml_manifest(path: Path, text: str, base: Path) -> list[RepoSpec]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BatchError(f"{path}: invalid TOML: {exc}") from None
    entries = data.get("repo", [])
    if not isinstance(entries, list) or not entries:
        raise BatchError(f"{path}: expected [[repo]] tables with a `path` each")
    default = data.get("verify")
    specs = []
    for index, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise BatchError(f"{path}: [[repo]] number {index} needs a `path` string")
        command = entry.get("verify", default)
        if command is not None and not isinstance(command, str):
            raise BatchError(f"{path}: [[repo]] number {index}: `verify` must be a string")
        specs.append(RepoSpec(_resolve(base, entry["path"]), command or None))
    return specs


def _resolve(base: Path, location: str) -> Path:
    return (base / Path(location).expanduser()).resolve()


def _checkouts(directory: Path) -> list[RepoSpec]:
    """The directory itself if it is a checkout, else its checkouts one level down."""
    if (directory / ".git").exists():
        return [RepoSpec(directory.resolve())]
    found = sorted(child.resolve() for child in directory.iterdir() if (child / ".git").exists())
    if not found:
        raise BatchError(f"{directory}: not a git checkout and holds none")
    return [RepoSpec(path) for path in found]


# -- git -------------------------------------------------------------------------

class GitError(Exception):
    pass


def git(repo: Path, *args: str, check: bool = True, strip: bool = True) -> str:
    completed = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
    if check and completed.returncode != 0:
        message = (completed.stderr or completed.stdout).strip().splitlines()
        raise GitError(f"git {args[0]} failed: {message[-1] if message else f'exit {completed.returncode}'}")
    return completed.stdout.strip() if strip else completed.stdout


def _sha(repo: Path, ref: str) -> str | None:
    return git(repo, "rev-parse", "--verify", "--quiet", ref, check=False) or None


def _state_dir(repo: Path) -> Path:
    git_dir = Path(git(repo, "rev-parse", "--git-dir"))
    return (git_dir if git_dir.is_absolute() else repo / git_dir) / STATE_DIR


def _load_state(repo: Path) -> dict[str, Any]:
    try:
        return json.loads((_state_dir(repo) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_state(repo: Path, state: dict[str, Any]) -> None:
    directory = _state_dir(repo)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")


# -- one repository -------------------------------------------------------------------

@dataclass
class RepoRun:
    spec: RepoSpec
    options: BatchOptions
    status: Status
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.spec.path


def migrate(spec: RepoSpec, options: BatchOptions, status: Status | None = None) -> dict[str, Any]:
    """Migrate one repository; never raises: every failure ends up in the report."""
    run = RepoRun(spec, options, status or (lambda state, detail: None))
    run.report = {"name": spec.name, "path": str(spec.path), "branch": options.branch, "status": FAILED,
                  "detail": "", "codemods_applied": [], "codemods_rolled_back": [], "files_changed": [],
                  "findings": [], "errors": [], "verify": None, "commits": [], "pr_description": None}
    cwd = Path.cwd()
    try:
        _migrate(run)
    except (GitError, OSError, config.ConfigError, registry.RegistryError, ValueError) as exc:
        run.report.update(status=FAILED, detail=str(exc))
    except Exception as exc:  # a bug must cost this repository only
        run.report.update(status=FAILED, detail=f"internal error: {type(exc).__name__}: {exc}")
    finally:
        os.chdir(cwd)
    run.status(run.report["status"], run.report["detail"])
    return run.report


def _migrate(run: RepoRun) -> None:
    repo, options, report = run.repo, run.options, run.report
    run.status("checking", "")
    if not repo.is_dir():
        report.update(status=REFUSED, detail="no such directory")
        return
    if git(repo, "rev-parse", "--is-inside-work-tree", check=False) != "true":
        report.update(status=REFUSED, detail="not a git checkout")
        return
    state = _load_state(repo)
    done = state.get(options.branch)
    if done and set(options.codemods) <= set(done["codemods"]) and _sha(repo, done["ref"]) == done["sha"]:
        report.update(done["report"], path=str(repo))
        report.update(status=SKIPPED, detail=f"already done on {done['ref'].removeprefix('refs/heads/')} "
                                             f"({done['sha'][:8]}); previously {done['report']['status']}",
                      previous_status=done["report"]["status"])
        return
    dirty = git(repo, "status", "--porcelain=v1", "--untracked-files=normal", strip=False).splitlines()
    if dirty:
        names = [line[3:] for line in dirty]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        report.update(status=REFUSED, detail=f"uncommitted changes ({', '.join(names[:3])}{more}): "
                                             "commit or stash them first")
        return
    if options.commit and not git(repo, "var", "GIT_COMMITTER_IDENT", check=False):
        report.update(status=REFUSED, detail="git has no identity to commit with: set user.name and user.email")
        return
    base = git(repo, "symbolic-ref", "--short", "-q", "HEAD", check=False) or _sha(repo, "HEAD") or ""
    report["base"] = base
    branch_ref = f"refs/heads/{options.branch}"
    created_branch = _sha(repo, branch_ref) is None
    if created_branch:
        git(repo, "checkout", "-q", "-b", options.branch)
    elif base != options.branch:
        git(repo, "checkout", "-q", options.branch)
    report["resumed"] = not created_branch

    command = run.spec.verify or options.verify
    known = registry.all_codemods()
    settings = config.load(repo, set(known))
    codemods = [known[name](**settings.codemod_options.get(name, {})) for name in options.codemods]
    os.chdir(repo)  # display paths, and so commits, are relative to the repository
    steps = verify.apply_in_steps(
        ["."], codemods, command=command, timeout=options.verify_timeout, cwd=repo,
        excludes=settings.exclude, jobs=1,
        on_baseline=lambda baseline: run.status("verifying", f"baseline {baseline.describe()}"),
        before_step=lambda codemod: run.status("applying", codemod.name),
        after_step=lambda step: _settle(run, step, codemods),
    )
    _record(run, steps, codemods)
    kept = report["files_changed"]
    if not kept and created_branch:
        git(repo, "checkout", "-q", base)  # an empty branch is no use to anyone
        git(repo, "branch", "-q", "-D", options.branch)
        report["branch"] = None
    ref = branch_ref if report["branch"] else (f"refs/heads/{base}" if _sha(repo, f"refs/heads/{base}") else "HEAD")
    report["pr_description"] = _write_description(run, steps, codemods) if kept else None
    if report["status"] != FAILED:
        state[options.branch] = {"codemods": list(options.codemods), "ref": ref, "sha": _sha(repo, ref),
                                 "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 "report": report}
        _save_state(repo, state)


def _settle(run: RepoRun, step: verify.Step, codemods: list[Codemod]) -> None:
    """After a step: tell the user, and commit what it kept."""
    if step.rolled_back:
        run.status("verifying", f"{step.codemod} broke the tests: rolled back")
    elif step.kept:
        run.status("committing" if run.options.commit else "applied", f"{step.codemod}: {len(step.kept)} file(s)")
    if not run.options.commit or not step.kept:
        return
    codemod = next(c for c in codemods if c.name == step.codemod)
    git(run.repo, "add", "--", *step.kept)
    git(run.repo, "commit", "-q", "-m", commit_message(codemod, step))
    run.report["commits"].append({"sha": _sha(run.repo, "HEAD"), "codemod": step.codemod,
                                  "subject": f"flask-refactor: {step.codemod}"})


def commit_message(codemod: Codemod, step: verify.Step) -> str:
    lines = [f"flask-refactor: {codemod.name}", "", codemod.summary, "", "Why: " + _why(codemod), "", "Files:"]
    lines += [f"  {'A' if path in step.created else 'M'} {path}" for path in step.kept]
    if step.verify:
        lines += ["", f"Verified: `{step.verify.command}` {step.verify.describe()}."]
    needs = [f for f in step.findings if f.severity.rank >= Severity.WARNING.rank]
    if needs:
        lines += ["", f"Left for a human: {len(needs)} finding(s), see the pull-request description."]
    return "\n".join(lines) + "\n"


def _why(codemod: Codemod) -> str:
    """The opening prose of the codemod's explanation (code examples skipped), to the end of
    its first complete sentence-bearing paragraph: why the change is made."""
    prose = []
    for paragraph in codemod.explain.strip().split("\n\n"):
        if paragraph.startswith((" ", "\t", "*", "-")):
            continue  # an example or a list: not the reason
        prose.append(" ".join(paragraph.split()))
        if prose[-1].endswith((".", ":")) or len(prose) == 3:
            break
    text = " ".join(prose)
    return text[:-1] + "." if text.endswith(":") else text or codemod.summary


def _record(run: RepoRun, steps: verify.Steps, codemods: list[Codemod]) -> None:
    report = run.report
    report["codemods_applied"] = [s.codemod for s in steps.steps if s.kept]
    report["codemods_rolled_back"] = [s.codemod for s in steps.rolled_back]
    report["files_changed"] = sorted({p for s in steps.steps for p in s.kept})
    report["findings"] = [f.as_dict() for f in steps.findings]
    report["errors"] = [{"codemod": s.codemod, "path": path, "message": message}
                        for s in steps.steps for path, message in s.result.errors]
    report["verify"] = None if steps.baseline is None else {
        "command": steps.command,
        "baseline": steps.baseline.as_dict(),
        "verified": steps.verifying,
        "steps": [{"codemod": s.codemod, **s.verify.as_dict(), "rolled_back": s.rolled_back}
                  for s in steps.steps if s.verify],
    }
    report["uncommitted"] = bool(report["files_changed"]) and not run.options.commit
    if steps.rolled_back:
        status, detail = PARTIAL, "rolled back: " + ", ".join(report["codemods_rolled_back"])
    elif report["files_changed"]:
        applied, files = len(report["codemods_applied"]), len(report["files_changed"])
        status, detail = MIGRATED, f"{applied} codemod(s), {files} file(s)"
    else:
        status, detail = UNCHANGED, "nothing to change"
    notes = []
    if steps.baseline and not steps.baseline.passed:
        notes.append(f"baseline {steps.baseline.describe()}: not verified")
    if report["errors"]:
        notes.append(f"{len(report['errors'])} error(s)")
    needs = [f for f in steps.findings if f.severity.rank >= Severity.WARNING.rank]
    if needs:
        notes.append(f"{len(needs)} finding(s) need a human")
    elif steps.findings:
        notes.append(f"{len(steps.findings)} finding(s) for information")
    report.update(status=status, detail="; ".join([detail, *notes]))


# -- the pull-request description -----------------------------------------------------

def describe(report: dict[str, Any], codemods: list[Codemod], files_by_codemod: dict[str, list[str]]) -> str:
    """Markdown fit for a pull-request body: what changed, why, what needs a human."""
    by_name = {c.name: c for c in codemods}
    commits = {c["codemod"]: c["sha"][:10] for c in report["commits"]}
    intro = "Automated, reviewable changes towards the structure Flask recommends."
    if commits:
        intro += " Each codemod is its own commit."
    lines = [f"# Migrate {report['name']} with flask-refactor", "", intro, "", "## What changed", ""]
    for name in report["codemods_applied"]:
        files = ", ".join(f"`{p}`" for p in files_by_codemod.get(name, []))
        commit = f" ({commits[name]})" if name in commits else ""
        lines.append(f"- **{name}**{commit}: {by_name[name].summary} Files: {files}")
    lines += ["", "## Why", ""]
    for name in report["codemods_applied"]:
        lines += [f"**{name}**: {_why(by_name[name])}", ""]
    verify_info = report.get("verify")
    lines += ["## Verification", ""]
    if not verify_info:
        lines.append("No verify command was given: run the test suite before merging.")
    else:
        lines.append(f"Command: `{verify_info['command']}`; before the change it "
                     f"{'passed' if verify_info['baseline']['passed'] else 'FAILED'}.")
        for step in verify_info["steps"]:
            outcome = "passed" if step["passed"] else "failed, so it was rolled back"
            lines.append(f"- after **{step['codemod']}**: {outcome}")
        if not verify_info["verified"]:
            lines.append("- the baseline was failing, so these changes are **not verified**")
    lines += ["", "## Needs a human", ""]
    lines += _needs_a_human(report) or ["Nothing: every change was verified and no codemod left a warning."]
    notes = [f for f in report["findings"] if f["severity"] == Severity.INFO.value]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- `{f['path']}:{f['line']}` ({f['codemod']}): {f['message']}" for f in notes]
    return "\n".join(lines).rstrip() + "\n"


def _needs_a_human(report: dict[str, Any]) -> list[str]:
    items = []
    verify_info = report.get("verify") or {}
    for step in verify_info.get("steps", []):
        if step["rolled_back"]:
            items += [f"- [ ] **{step['codemod']}** broke `{verify_info['command']}` and was rolled back; "
                      "its change is not in this branch. Output tail:", "", "  ```",
                      *[f"  {line}" for line in step["tail"].splitlines()[-15:]], "  ```"]
    if not verify_info:
        items.append("- [ ] No test command checked these changes (`--verify`): run the test suite.")
    elif not verify_info.get("verified"):
        baseline = verify_info["baseline"]
        how = "timed out" if baseline["timed_out"] else f"exit {baseline['returncode']}"
        items.append(f"- [ ] `{verify_info['command']}` failed before any change ({how}), so nothing here "
                     "is verified: fix the suite, then check this branch with it.")
    for finding in report["findings"]:
        if finding["severity"] != Severity.INFO.value:
            items.append(f"- [ ] `{finding['path']}:{finding['line']}` ({finding['codemod']}, "
                         f"{finding['severity']}): {finding['message']}")
    for error in report["errors"]:
        items.append(f"- [ ] `{error['path']}` ({error['codemod']}): {error['message']}")
    if report.get("uncommitted"):
        items.append("- [ ] The changes are not committed (run without `--commit`): review and commit them.")
    return items


def _write_description(run: RepoRun, steps: verify.Steps, codemods: list[Codemod]) -> str:
    report = run.report
    text = describe(report, codemods, {s.codemod: s.kept for s in steps.steps if s.kept})
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", run.options.branch)
    path = _state_dir(run.repo) / f"{safe}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    report["pr_body"] = text
    return str(path)


# -- many repositories ------------------------------------------------------------------

_EVENTS = None  # the coordinator's queue, in worker processes


def _init_worker(events) -> None:
    global _EVENTS
    _EVENTS = events


def _migrate_in_worker(spec: RepoSpec, options: BatchOptions) -> dict[str, Any]:
    def status(state: str, detail: str) -> None:
        _EVENTS.put((spec.name, state, detail))

    return migrate(spec, options, status)


def run_all(specs: list[RepoSpec], options: BatchOptions, jobs: int,
            on_status: Callable[[str, str, str], None]) -> list[dict[str, Any]]:
    """Migrate every repository, `jobs` at a time; reports in the order given."""
    if jobs <= 1 or len(specs) <= 1:
        return [migrate(spec, options, lambda s, d, name=spec.name: on_status(name, s, d)) for spec in specs]
    import multiprocessing
    import queue
    from concurrent.futures import ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no fork of a process running a live display
    events = context.Queue()
    reports: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(min(jobs, len(specs)), mp_context=context, initializer=_init_worker,
                             initargs=(events,)) as pool:
        futures = {pool.submit(_migrate_in_worker, spec, options): spec for spec in specs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.1)
            _drain(events, on_status, queue)
            for future in done:
                spec = futures[future]
                try:
                    reports[spec.name] = future.result()
                except Exception as exc:  # the worker itself died
                    reports[spec.name] = {"name": spec.name, "path": str(spec.path), "status": FAILED,
                                          "detail": f"worker failed: {type(exc).__name__}: {exc}"}
                    on_status(spec.name, FAILED, reports[spec.name]["detail"])
        _drain(events, on_status, queue)
    return [reports[spec.name] for spec in specs]


def _drain(events, on_status, queue_module) -> None:
    while True:
        try:
            name, state, detail = events.get_nowait()
        except queue_module.Empty:
            return
        on_status(name, state, detail)


def report_document(reports: list[dict[str, Any]], options: BatchOptions) -> dict[str, Any]:
    totals: dict[str, int] = {}
    for report in reports:
        totals[report["status"]] = totals.get(report["status"], 0) + 1
    return {"version": REPORT_VERSION, "branch": options.branch, "codemods": list(options.codemods),
            "commit": options.commit, "repos": reports, "totals": totals}
