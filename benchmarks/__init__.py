"""Benchmarks of twochat-async beside raw aiohttp, httpx and requests.

Run from the repository root: ``python -m benchmarks.run`` (see :mod:`benchmarks.run`).
The modules, in the order a run uses them: ``run`` (the command and its two sizes),
``server`` (the canned HTTP server), ``measure`` (worker processes, medians, ratios),
``clients`` (the clients compared, and the worker that times one), ``imports`` (import
time), ``report`` (targets and the printed table); ``profile`` profiles one client.
"""
