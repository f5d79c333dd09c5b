"""The ``boltzkit`` command line.

Each command lives in its own module with a ``register`` function that adds
its parser. Library errors become one line on stderr and exit status 2.
"""

from boltzkit.cli._main import main

__all__ = ["main"]
