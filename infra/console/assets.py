"""The console's front-end files.

Third-party packages come from the npm registry at set-up (`make` runs `npm ci` in
`infra/console/assets`, pinned by its `package-lock.json`) and are served from there
under `/console/static/vendor/<name>`; only the files named in `VENDOR` are served,
never the rest of `node_modules`. The console's own CSS and JavaScript are in
`infra/console/static` (`/console/static/<name>`). Nothing is fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS_DIR", "OWN_DIR", "VENDOR", "missing_vendor_files", "vendor_file"]

HERE = Path(__file__).resolve().parent
ASSETS_DIR = HERE / "assets"
NODE_MODULES = ASSETS_DIR / "node_modules"
OWN_DIR = HERE / "static"

VENDOR: dict[str, str] = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}
"""Served name -> its path under node_modules."""

TEST_VENDOR: dict[str, str] = {"axe.min.js": "axe-core/axe.min.js"}
"""Only the browser tests inject these (never served)."""


def vendor_file(name: str) -> Path | None:
    """The file served as `vendor/<name>`, or None (not one of ours, or not installed)."""
    relative = VENDOR.get(name)
    if relative is None:
        return None
    path = NODE_MODULES / relative
    return path if path.is_file() else None


def test_vendor_file(name: str) -> Path:
    return NODE_MODULES / TEST_VENDOR[name]


def missing_vendor_files() -> list[str]:
    """The vendor files not installed (run `make setup`, which runs `npm ci`)."""
    return [name for name in VENDOR if vendor_file(name) is None]
