"""The stylesheets and scripts the templates link are the ones in static/: none missing, none left out."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINKED = re.compile(r"""{%\s*static\s+['"]([^'"]+\.(?:css|js))['"]\s*%}""")


def _linked_assets() -> set[str]:
    return {
        match for page in (ROOT / "templates").rglob("*.html") for match in LINKED.findall(page.read_text())
    }


def test_every_linked_asset_exists() -> None:
    missing = sorted(path for path in _linked_assets() if not (ROOT / "static" / path).is_file())
    assert not missing


def test_every_stylesheet_is_linked_by_a_page() -> None:
    stylesheets = {str(path.relative_to(ROOT / "static")) for path in (ROOT / "static" / "css").glob("*.css")}
    assert stylesheets and stylesheets <= _linked_assets(), sorted(stylesheets - _linked_assets())
