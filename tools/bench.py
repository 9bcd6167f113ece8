#!/usr/bin/env python3
"""slurmgen's throughput benchmark, on its own simulator (see tools/bench/cli.py).

    python tools/bench.py --quick --out DIR     # a few minutes (CI smoke test)
    python tools/bench.py --out DIR             # the full set

Writes DIR/results.json and DIR/*.png (when matplotlib is installed), prints a table.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
