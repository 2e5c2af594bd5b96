"""The Troubleshoot page: docs/troubleshoot.md in the site's layout, rendered safely."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .access import render_page, viewer_required

TROUBLESHOOT_DOC = Path(settings.BASE_DIR) / "docs" / "troubleshoot.md"
LIST_ITEM = re.compile(r"^\s*(?:[-*]|(\d+)\.)\s+(.*)$")


@viewer_required
def troubleshoot(request: HttpRequest) -> HttpResponse:
    """docs/troubleshoot.md as blocks of escaped text (no HTML from the file reaches the page)."""
    try:
        text = TROUBLESHOOT_DOC.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    return render_page(request, "frontend/troubleshoot.html", {"blocks": markdown_blocks(text)})


@dataclass
class Block:
    kind: str  # h1 h2 h3 p pre ul ol
    text: str = ""
    items: list[str] = field(default_factory=list)
    start: int = 1  # an ordered list's first number (lists interrupted by a sub-list go on)


def markdown_blocks(text: str) -> list[Block]:
    """A small, safe reading of Markdown: headings, fenced code, lists and paragraphs.
    The template escapes all text; only `inline code` becomes markup (see the inline_code tag)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            blocks.append(Block("pre", "\n".join(lines[i + 1 : end])))
            i = end + 1
            continue
        _add_line(blocks, line, previous_blank=i == 0 or not lines[i - 1].strip())
        i += 1
    return blocks


def _add_line(blocks: list[Block], line: str, previous_blank: bool) -> None:
    level = len(line) - len(line.lstrip("#"))
    item = LIST_ITEM.match(line)
    last = blocks[-1] if blocks else None
    if 1 <= level <= 3 and line[level : level + 1] == " ":
        blocks.append(Block(f"h{level}", line[level + 1 :].strip()))
    elif not line.strip():
        return
    elif item:
        kind = "ol" if item.group(1) else "ul"
        if last is not None and last.kind == kind and (kind == "ul" or not previous_blank or last.items):
            last.items.append(item.group(2))
        else:
            blocks.append(Block(kind, items=[item.group(2)], start=int(item.group(1) or 1)))
    elif last is not None and not previous_blank and last.kind in ("ul", "ol"):
        last.items[-1] += " " + line.strip()  # an item's continuation line
    elif last is not None and not previous_blank and last.kind == "p":
        last.text += " " + line.strip()
    else:
        blocks.append(Block("p", line.strip()))
