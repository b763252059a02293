"""StyleGallery entry point: `python main.py` opens the window; `python main.py COMMAND ...` runs the CLI.

Commands live in the `cli` package, one module each, imported only when used (so `analyze` never
loads Qt and the window never waits for the CLI).
"""
from __future__ import annotations

import multiprocessing
import sys

COMMANDS = {
    "gui": "cli.gui",
    "analyze": "cli.analyze",
    "run": "cli.run",
    "draft": "cli.draft",
    "screenshot": "cli.screenshot",
}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import importlib

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="stylegallery", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    modules = {name: importlib.import_module(module_name) for name, module_name in COMMANDS.items()}
    for module in modules.values():
        module.add_parser(sub)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["gui", *argv]
    args = parser.parse_args(argv)  # --help and bad options exit here, before torch is loaded

    from engine.threads import apply_thread_policy

    apply_thread_policy()  # before any command touches torch or onnxruntime: one split of the cores for all
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # first thing, for frozen (PyInstaller) builds
    sys.exit(main())
