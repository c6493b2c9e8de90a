"""A file a user named (a task file, a template, a ratings CSV): its text, or one line saying why not."""

from __future__ import annotations

from pathlib import Path

from mibe.types import MibeError


def read_text(path: Path, what: str, encoding: str = "utf-8") -> str:
    """The file's text; `what` names it in the error ("task file"). `utf-8-sig` drops a byte-order mark."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise MibeError(f"{path}: {what} not found; check the path") from None
    except IsADirectoryError:
        raise MibeError(f"{path}: is a folder, not a {what}; name the {what} inside it") from None
    except UnicodeDecodeError:
        raise MibeError(f"{path}: not UTF-8 text; save the {what} as UTF-8") from None
    except OSError as exc:
        raise MibeError(f"{path}: cannot read the {what} ({exc.strerror}); check its permissions") from None
