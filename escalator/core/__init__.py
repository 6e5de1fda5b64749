"""The pure core: mail bytes -> a parsed mail -> a decision. No I/O, no clock, no network.

Everything here takes its inputs as arguments (the instant, the rules text, the holiday dates)
so it can be tested as tables and reused by the CLI, the worker and the review page alike.
"""
