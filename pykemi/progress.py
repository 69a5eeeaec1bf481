"""Progress of start-up and long commands: one line per step on stderr, silenced by ``-q``."""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, prog: str, quiet: bool = False) -> None:
        self.prog = prog
        self.quiet = quiet

    def step(self, text: str) -> None:
        if not self.quiet:
            print(f"{self.prog}: {text}", file=sys.stderr, flush=True)
