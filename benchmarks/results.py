"""Where every benchmark writes what it measured: `results/<name>.md` and `results/<name>.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(folder: Path, name: str, markdown: str, report: Any) -> None:
    """The table as printed, and the numbers behind it for later comparison."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(markdown, encoding="utf-8")
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    (folder / f"{name}.json").write_text(text, encoding="utf-8")
