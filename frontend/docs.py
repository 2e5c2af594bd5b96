"""The Troubleshoot page: docs/troubleshoot.md in the site's layout, rendered safely."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .access import render_page, viewer_required

TROUBLESHOOT_DOC = Path(settings.BASE_DIR) / "docs" / "troubleshoot.md"


@viewer_required
def troubleshoot(request: HttpRequest) -> HttpResponse:
    """docs/troubleshoot.md as escaped text blocks (no HTML from the file reaches the page)."""
    try:
        text = TROUBLESHOOT_DOC.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    return render_page(request, "frontend/troubleshoot.html", {"blocks": markdown_blocks(text)})


def markdown_blocks(text: str) -> list[tuple[str, str]]:
    """A tiny reading of Markdown: (kind, text) blocks — h1/h2/h3, pre (fenced code) and
    p (consecutive lines, breaks kept). The template escapes the text; inline markup stays as typed."""
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            blocks.append(("pre", "\n".join(lines[i + 1 : end])))
            i = end + 1
            continue
        level = len(line) - len(line.lstrip("#"))
        if 1 <= level <= 3 and line[level : level + 1] == " ":
            blocks.append((f"h{level}", line[level + 1 :].strip()))
        elif line.strip():
            if blocks and blocks[-1][0] == "p" and lines[i - 1].strip():
                blocks[-1] = ("p", blocks[-1][1] + "\n" + line)
            else:
                blocks.append(("p", line))
        i += 1
    return blocks
