"""`python -m vipmover` (with `function/` on the path): the operator's command, `mirror-vip`."""

import sys

from vipmover.cli import main

sys.exit(main())
