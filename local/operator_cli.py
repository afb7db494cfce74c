"""The `mirror-vip` console script of the development virtualenv.

The command lives in the function's source (`function/vipmover/cli`), which is deployed as a
directory rather than installed: put that directory on the path, then run it.
"""

from __future__ import annotations

import sys

from local.function_process import FUNCTION_DIR


def main() -> int:
    if str(FUNCTION_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTION_DIR))
    from vipmover.cli import main as run  # noqa: PLC0415

    return run()
