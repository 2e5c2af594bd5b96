"""The API's one parser: JSON, bounded before it is parsed (README, "Security model").

No endpoint takes a form or a file (the pages send JSON through common.js), so there is
no form or multipart parser to bound as well.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.parsers import JSONParser

from core import bounds
from core.errors import InputError


class BoundedJSONParser(JSONParser):
    """A JSON body of at most NOMAFLOW_MAX_BODY_BYTES (413 beyond: RequestDataTooBig, as
    Django's own bound says), nested at most bounds.body_depth() levels and holding nothing
    PostgreSQL cannot store (400 naming the path). The depth is read from the text first:
    json.loads recurses once per level."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        raw = _read(stream, parser_context or {})
        path = bounds.text_too_deep(raw.decode("utf-8", errors="replace"), bounds.body_depth())
        if path is not None:
            raise InputError.from_errors({path or bounds.ROOT: [bounds.too_deep(bounds.body_depth())]})
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        errors = bounds.check_body(data)
        if errors:
            raise InputError.from_errors(errors)
        return data


def _read(stream: IO[Any], parser_context: Mapping[str, Any]) -> bytes:
    limit = settings.NOMAFLOW_MAX_BODY_BYTES
    request = parser_context.get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestDataTooBig  # refused unread
    raw = stream.read(limit + 1)  # the length header may be absent or lie
    if len(raw) > limit:
        raise RequestDataTooBig
    return raw
