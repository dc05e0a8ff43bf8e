"""`helm test`: each dashboard URL given answers Streamlit's health check, within a deadline.

python dashboard_health.py SECONDS URL...   exit 0 when every URL said "ok", 1 otherwise.
Only the standard library: the chart's test pod runs it with the operator image's interpreter.
"""

from __future__ import annotations

import sys
import time
import urllib.request


def answer(url: str) -> str | None:
    """None when the dashboard is healthy, else what it said instead."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http URLs of the chart
            body = response.read(64).decode(errors="replace")
            status = response.status
    except OSError as exc:  # refused, timed out, HTTP errors (urllib raises HTTPError for 4xx/5xx)
        return str(exc)
    return None if status == 200 and body == "ok" else f"HTTP {status} {body!r}"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: dashboard_health.py SECONDS URL...", file=sys.stderr)
        return 2
    deadline = time.monotonic() + int(argv[0])
    failed = 0
    for url in argv[1:]:
        while (problem := answer(url)) is not None and time.monotonic() < deadline:
            time.sleep(2)
        if problem is None:
            print(f"ok {url}")
        else:
            print(f"FAILED {url}: {problem}")
            failed += 1
    print(f"{len(argv) - 1 - failed}/{len(argv) - 1} dashboards answer")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
