"""``python -m training.cli``: the same as ``fraudstream-train``."""

import sys

from training.cli import main

sys.exit(main())
