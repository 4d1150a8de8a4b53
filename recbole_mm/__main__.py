"""``python -m recbole_mm SUBCOMMAND ...`` is ``recbole-mm SUBCOMMAND ...``."""

import sys

from recbole_mm.cli import main

sys.exit(main())
