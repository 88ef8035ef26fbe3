"""Reading input that comes from outside (the corpus, a saved case, command-line JSON): one line per refusal.

Every refusal is an `InputError` (a ValueError) whose message names what was read and what was wrong. Nothing
here blocks, recurses without bound or reads without bound: a FIFO or a device is refused before it is opened, a
file is read up to `MAX_FILE_BYTES`, and JSON nested deeper than `MAX_DEPTH` is refused before it is parsed.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import stat
from typing import Any

import numpy as np

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "InputError",
    "MissingInput",
    "nesting",
    "one_line",
    "parse_json",
    "read_json",
    "read_regular",
    "shown",
]

# The corpus nests 11 levels deep; a saved case 9. Far below the interpreter's recursion limit, so that neither
# the parser nor anything that walks the result (numpy, the schema validator) can run out of stack.
MAX_DEPTH = 64
# The largest corpus file is about 1 MiB and the whole corpus is kept under 20 MiB.
MAX_FILE_BYTES = 64 * 2**20
# A problem line longer than this is cut: an echoed value must not turn one line into a megabyte.
MAX_LINE = 1000


class InputError(ValueError):
    """Input refused: the message is one line naming the file (or option) and what was wrong."""


class MissingInput(InputError):
    """The file does not exist (the corpus says "listed but missing" for this one)."""


def shown(value: Any) -> str:
    """A JSON value as a problem line names it: containers by kind, scalars as JSON (quoted, escaped, short)."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    return json.dumps(value)[:60]


def one_line(message: str) -> str:
    """`message` as one printable line: control characters (a newline in a file name) and lone surrogates
    (undecodable bytes in argv) escaped, so the line can neither break in two nor fail to print."""
    if not message.isprintable():
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    return message if len(message) <= MAX_LINE else message[: MAX_LINE - 1] + "…"


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _refuse_irregular(path: pathlib.Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a file")
        raise InputError(f"{path}: {kind}, not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {info.st_size} bytes, larger than the limit of {MAX_FILE_BYTES}")


def read_regular(path: pathlib.Path) -> bytes:
    """The bytes of a regular file. Anything else is refused from its stat alone, never opened: reading a FIFO
    blocks until a writer comes, and a device may never end."""
    try:
        _refuse_irregular(path, os.stat(path))
        # Opened non-blocking and checked again once open, so a file swapped for a FIFO in between cannot block.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as file:
            _refuse_irregular(path, os.fstat(file.fileno()))
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise MissingInput(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:  # it grew after the stat
        raise InputError(f"{path}: larger than the limit of {MAX_FILE_BYTES} bytes")
    return data


# Escapes first (so that \" and \\ cannot end a string early), then every byte but quotes and brackets, then the
# empty strings that leaves, then what is left of strings holding brackets: what remains is the nesting.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')


def nesting(data: bytes) -> int:
    """How deep the arrays and objects of JSON text nest (exact for valid JSON), without parsing it.

    About 1.5 ms per MiB: the bytes are reduced in C (translate, replace) and the brackets counted by NumPy.
    """
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    # Two adjacent quotes are an empty string or the end of one string and the start of the next: dropping
    # them never moves a bracket into or out of a string.
    data = data.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in data:
        data = _STRING.sub(b"", data)
    brackets = np.frombuffer(data, dtype=np.uint8)
    if not brackets.size:
        return 0
    opens = (brackets == ord("[")) | (brackets == ord("{"))
    return int(np.cumsum(np.where(opens, 1, -1), dtype=np.int32).max())


def parse_json(data: bytes | str, what: str) -> Any:
    """Strict UTF-8 JSON no deeper than MAX_DEPTH; `what` names the source in the error."""
    try:
        if isinstance(data, str):
            raw, text = data.encode("utf-8"), data  # a lone surrogate: argv bytes that were not UTF-8
        else:
            raw, text = data, data.decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError) as exc:  # what encode and decode raise
        raise InputError(f"{what}: not UTF-8 ({exc.reason} at offset {exc.start})") from None
    depth = nesting(raw)
    if depth > MAX_DEPTH:
        raise InputError(f"{what}: JSON nested {depth} levels deep; at most {MAX_DEPTH} are accepted")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except DuplicateKey as exc:
        raise InputError(f"{what}: the key {exc.args[0]!r} is given twice in one object") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # only if the scan above were wrong: the parser recurses once per level
        raise InputError(f"{what}: JSON nested too deep") from None
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
        raise InputError(f"{what}: not valid JSON (a number too long to convert)") from None


class DuplicateKey(ValueError):
    """A JSON object naming one key twice: JSON keeps the last silently, hiding an edit that meant the first."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [key for key, _ in pairs]
        raise DuplicateKey(next(key for index, key in enumerate(keys) if key in keys[:index]))
    return out


def read_json(path: pathlib.Path) -> Any:
    """A regular file's JSON, under every rule of `read_regular` and `parse_json`."""
    return parse_json(read_regular(path), str(path))
