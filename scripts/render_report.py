"""Render an HTML report to a PNG in headless Chromium, to look at it as a reader would.

Usage::

    python scripts/render_report.py report.html report.png [--width 1200] [--chromium /usr/bin/chromium]

Needs the ``playwright`` Python package (``pip install playwright``; never its browser download) and a
Chromium executable (Debian: ``apt-get install chromium``). Prints the console messages and page errors
the page produced (a self-contained report has none) and exits non-zero when there were any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CHROMIUM = "/usr/bin/chromium"


def render(html: Path, png: Path, *, width: int = 1200, chromium: str = DEFAULT_CHROMIUM) -> list[str]:
    """Screenshot the whole page of ``html`` into ``png``; return the console errors and page errors seen.

    Requests to anything but the file itself are blocked and reported, so a report that is not
    self-contained shows up as errors.
    """
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    target = html.resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

            def route(r):
                url = r.request.url
                if url == target or url.startswith("data:"):
                    return r.continue_()
                problems.append(f"external request blocked: {url}")
                return r.abort()

            page.route("**/*", route)
            page.goto(target, wait_until="load")
            png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--chromium", default=DEFAULT_CHROMIUM)
    args = parser.parse_args(argv)
    problems = render(args.html, args.png, width=args.width, chromium=args.chromium)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"wrote {args.png}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
