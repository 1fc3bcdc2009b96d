"""A benchmark of what users of twochat-async feel: ``python -m benchmarks``.

One module per section (``budget`` also holds ``purchase``; ``memory``, ``startup``,
``cpu``), ``servers`` (the 2Chat stand-in, nginx, redis-server), ``common`` (child
processes, statistics); ``__main__`` is the command. Method: docs/performance.md.
"""
