"""``python -m producers.cli``: the same as ``fraudstream-generate``."""

import sys

from producers.cli import main

sys.exit(main())
