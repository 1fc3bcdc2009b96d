"""``python -m twochat_async``: the ``twochat`` command."""

import sys

from .cli import main

sys.exit(main())
