"""`python -m mirrorvip_publisher ...`: see `cli.py`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
