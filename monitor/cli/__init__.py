"""The `monitor` command line: the click group (`app`), the query commands, output and time arguments.

The console script `monitor` runs `monitor.cli:main`. This layer may import every other part of
`monitor`; nothing else imports click or this package.
"""

from monitor.cli.app import cli, main

__all__ = ["cli", "main"]
