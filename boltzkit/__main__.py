"""Run the command line with ``python -m boltzkit``."""

import sys

from boltzkit.cli import main

sys.exit(main())
