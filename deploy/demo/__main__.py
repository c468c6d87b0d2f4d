"""``python -m deploy.demo``: see :mod:`deploy.demo`."""

import sys

from deploy.demo.cli import main

sys.exit(main())
