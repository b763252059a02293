"""Command-line commands, one module each: `add_parser(subparsers)` and `run(args) -> exit code`.

Errors the engine raises on purpose become one readable line on stderr and exit code 2
(see `cli.common.report_errors`).
"""
