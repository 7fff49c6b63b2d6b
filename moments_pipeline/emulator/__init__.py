"""A local emulator of the Infobip Moments API, for tests, demos and benchmarks.

Product code never imports this package (a test enforces the boundary); only the
``moments-pipeline emulator`` subcommand loads it, lazily.
"""
