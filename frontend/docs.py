"""The Troubleshoot page: docs/troubleshoot.md in the site's layout, rendered safely."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from .access import render_page, viewer_required

TROUBLESHOOT_DOC = Path(settings.BASE_DIR) / "docs" / "troubleshoot.md"
# CommonMark with raw HTML off: any HTML in the file is shown as text, never as markup, and
# markdown-it refuses javascript: and data: links itself.
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


@viewer_required
def troubleshoot(request: HttpRequest) -> HttpResponse:
    try:
        text = TROUBLESHOOT_DOC.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    return render_page(request, "frontend/troubleshoot.html", {"doc": markdown_html(text)})


def markdown_html(text: str) -> SafeString:
    """`text` (Markdown) as HTML in which every piece of the text is escaped."""
    # Safe to mark: the text is a file shipped with nomaflow (not a user's input), and with
    # html=False markdown-it escapes every character of it and refuses unsafe link schemes
    # (tests/frontend/test_pages.py renders <b>, <x> and a javascript: link to prove it).
    return mark_safe(_MARKDOWN.render(text))
