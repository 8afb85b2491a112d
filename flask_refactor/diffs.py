"""Unified diffs that `git apply` and `patch -p1` accept and that reproduce exactly what
`apply` writes: `a/` and `b/` headers, `/dev/null` for new files, and the
"No newline at end of file" marker difflib leaves out."""

from __future__ import annotations

import difflib

NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(path: str, old: str | None, new: str, context: int = 3) -> str:
    old_lines = (old or "").splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    header_old = "/dev/null" if old is None else f"a/{path}"
    lines = difflib.unified_diff(old_lines, new_lines, header_old, f"b/{path}", n=context)
    out = []
    for line in lines:
        if line.startswith(("---", "+++")) and not line.endswith("\n"):
            line += "\n"
        elif not line.endswith(("\n", "\r")):
            line += "\n" + NO_NEWLINE
        out.append(line)
    if out and old is None:
        out.insert(0, f"diff --git a/{path} b/{path}\nnew file mode 100644\n")
    elif out:
        out.insert(0, f"diff --git a/{path} b/{path}\n")
    return "".join(out)


def count_changes(diff: str) -> tuple[int, int]:
    """(lines added, lines removed)."""
    added = removed = 0
    for line in diff.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed
