"""Reading a YAML data file with the same clear, Vietnamese errors everywhere.

Operators edit these files by hand (fee overrides, the province list); a typo must be
reported as "file: YAML không hợp lệ (dòng 7)", never as a parser traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, error: type[Exception], label: str | None = None) -> Any:
    """The parsed content of `path`; `error(message)` when it is missing or unreadable.

    `label` names the file in messages (default: the path as given).
    """
    name = label or str(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: không có tệp này") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{name}: không đọc được tệp ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (dòng {mark.line + 1})" if mark is not None else ""
        raise error(f"{name}: YAML không hợp lệ{where}") from None
    except ValueError as exc:  # PyYAML's own date parsing: "2025-02-30" is not a day
        raise error(f"{name}: YAML không hợp lệ: giá trị không đọc được ({exc})") from None
