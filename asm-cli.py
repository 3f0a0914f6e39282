#!/usr/bin/env python3
"""Entry point that runs the same Typer app as the ``asm`` console script."""

from asm.cli import main

if __name__ == "__main__":
    main()
