"""``python -m catvae.report SWEEP_DIR… [--out DIR]``: Figure 1 and Table 4 from search folders.

Reads each multirun folder's ``trials.csv`` and ``best.json`` (no W&B needed) and writes
``figure1.png`` (accuracy against mean cosine similarity, one curve per sweep) and ``table4.md``
(our best configuration per sweep beside the paper's Table 4 rows).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from catvae.config.task import command_errors
from catvae.sweep.report import report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m catvae.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun folders of catvae.search")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default logs/report/<time>)")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("CATVAE_LOG_DIR", "logs")) / "report" / time.strftime("%Y-%m-%d_%H-%M-%S")
    with command_errors():
        written = report(args.sweep_dirs, out)
    print(written["table"].read_text())
    print(f"figure: {written['figure']}\ntable: {written['table']}")


if __name__ == "__main__":
    main()
