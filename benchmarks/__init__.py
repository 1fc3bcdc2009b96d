"""Benchmarks of twochat-async beside raw aiohttp, httpx and requests.

Run from the repository root: ``python -m benchmarks.run`` (see :mod:`benchmarks.run`).
"""
