"""`python -m gateway` runs the `gateway` command."""

import sys

from gateway.commands.cli import main

sys.exit(main())
