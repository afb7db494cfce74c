"""What every benchmark shares: its `--out` folder, and how it reports what it measured
(the table printed, and `<out>/<name>.md` and `<out>/<name>.json` written)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"
"""The default `--out`: the results/ folder the README quotes."""


def bench_parser(name: str, description: str | None = None) -> argparse.ArgumentParser:
    """The parser of `python -m benchmarks <name>`, with the `--out` every benchmark takes."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks {name}", description=description)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"folder for {name}.md and {name}.json"
    )
    return parser


def write_results(folder: Path, name: str, markdown: str, report: Any) -> None:
    """Print the table; write it, and the numbers behind it for later comparison."""
    print(markdown, flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(markdown, encoding="utf-8")
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    (folder / f"{name}.json").write_text(text, encoding="utf-8")
    print(f"wrote {folder / name}.md and {name}.json", flush=True)
