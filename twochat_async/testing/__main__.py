"""``python -m twochat_async.testing``: the fake 2Chat as a standalone server."""

import sys

from ._server import main

sys.exit(main())
