"""Reading a YAML data file with the same clear, Vietnamese errors everywhere.

Operators edit these files by hand (fee overrides, the province list); a typo must be
reported as "file: YAML không hợp lệ (dòng 7)", never as a parser traceback.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, error: type[Exception], label: str | None = None,
              loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The parsed content of `path`; `error(message)` when it is missing or unreadable.

    `label` names the file in messages (default: the path as given); `loader` is a
    SafeLoader or a subclass of it (one that keeps impossible dates as text, say).
    """
    name = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: không có tệp này") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{name}: không đọc được tệp ({exc})") from None
    return parse_yaml(text, error, name, loader)


def parse_yaml(text: str, error: type[Exception], name: str,
               loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """`read_yaml` for a text kept elsewhere than in a file (a fee override stored in the
    database), with the same messages naming `name`."""
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (dòng {mark.line + 1})" if mark is not None else ""
        raise error(f"{name}: YAML không hợp lệ{where}") from None
    except ValueError as exc:  # PyYAML's own date parsing: "2025-02-30" is not a day
        raise error(f"{name}: YAML không hợp lệ: giá trị không đọc được ({exc})") from None


def iso_day(value: Any) -> date | None:
    """A day from YAML: a date (unquoted ISO), an ISO string, or blank (None).

    Raises ValueError for anything else, for the caller to word in its own message.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        raise ValueError(value)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value.strip())
    raise ValueError(value)
