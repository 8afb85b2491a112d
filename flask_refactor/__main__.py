"""`python -m flask_refactor` and the `flask-refactor` command (pyproject's script)."""

import gc


def main() -> None:
    """Import the command line with the collector off, then run it. Importing makes the
    tool's and libcst's classes and functions by the ten thousand, all kept for the whole
    process: collections while importing find nothing to free. What the imports made is
    then frozen (left out of later collections, as `pipeline` does with trees): merely
    turned back on, the collector walked it all again. The collector is on before any
    command runs."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        from .cli import entry
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    entry()


if __name__ == "__main__":
    main()
