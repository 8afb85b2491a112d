"""Reading a file's bytes into text and back, byte for byte.

A file's encoding (PEP 263 cookie or UTF-8), its BOM and its line endings are kept
so that writing unchanged text back reproduces the original bytes exactly.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass


class SourceError(Exception):
    """A file that cannot be turned into text; the message is one line for the user."""


@dataclass(frozen=True)
class Encoding:
    name: str = "utf-8"
    bom: bool = False

    def encode(self, text: str) -> bytes:
        data = text.encode(self.name)
        return codecs.BOM_UTF8 + data if self.bom else data


def decode(data: bytes, *, python: bool = True) -> tuple[str, Encoding]:
    """Decode a file. Python files honour a coding cookie; other text must be UTF-8."""
    if b"\0" in data:
        raise SourceError("binary file (contains NUL bytes)")
    bom = data.startswith(codecs.BOM_UTF8)
    body = data[len(codecs.BOM_UTF8):] if bom else data
    name = "utf-8"
    if python:
        cookie = _coding_cookie(body)
        if cookie:
            try:
                name = codecs.lookup(cookie).name
            except LookupError:
                raise SourceError(f"bad encoding declaration: unknown encoding {cookie!r}") from None
            if bom and name != "utf-8":
                raise SourceError(f"bad encoding declaration: {cookie!r} in a file with a UTF-8 BOM")
    try:
        text = body.decode(name)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"cannot decode as {name} (byte 0x{body[exc.start]:02x} at offset {exc.start})"
        ) from None
    return text, Encoding(codecs.lookup(name).name, bom)


# PEP 263: a comment in the first two lines; the second counts only if the first is a comment or blank.
_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_BLANK_OR_COMMENT = re.compile(rb"^[ \t\f]*(?:[#\r\n]|$)")


def _coding_cookie(data: bytes) -> str | None:
    lines = data.splitlines(keepends=True)[:2]
    for index, line in enumerate(lines):
        match = _COOKIE.match(line)
        if match:
            return match.group(1).decode("ascii")
        if index == 0 and not _BLANK_OR_COMMENT.match(line):
            break
    return None
