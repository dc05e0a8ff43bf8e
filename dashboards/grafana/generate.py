"""Write the Grafana dashboards into the chart, or check that the committed ones are current.

.venv/bin/python dashboards/grafana/generate.py           # (re)write charts/marketpulse/files/dashboards/
.venv/bin/python dashboards/grafana/generate.py --check   # exit 1 if a file differs from a fresh generation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marketpulse_dashboards import CHART_DASHBOARDS, render_all


def stale(folder: Path) -> list[str]:
    """Names of dashboards whose file in `folder` is missing or differs from a fresh generation."""
    return sorted(
        name
        for name, text in render_all().items()
        if not (folder / name).is_file() or (folder / name).read_text() != text
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report dashboards that are out of date")
    parser.add_argument(
        "--out", type=Path, default=CHART_DASHBOARDS, help="folder to write (default: the chart's)"
    )
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        for name in names:
            print(f"{args.out / name} is out of date: run .venv/bin/python dashboards/grafana/generate.py")
        return 1 if names else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
