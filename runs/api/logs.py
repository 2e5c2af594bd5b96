"""`/runs/{id}/logs/` (JSON pages of lines) and `/runs/{id}/logs.txt` (the whole log, streamed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.errors import JsonErrors

from .. import selectors
from ..choices import LogLevel
from ..logstore import READ_FIELDS, line_dict, text_line
from ..models import Run
from ..serializers import LogLineSerializer

LIMIT_DEFAULT, LIMIT_MAX = 1000, 10_000
TEXT_CHUNK = 5000  # lines per query while streaming logs.txt


class LogQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, default=0, help_text="only lines with a greater seq")
    before = serializers.IntegerField(
        min_value=1, required=False,
        help_text="only lines with a smaller seq, and the page is the *last* `limit` of them (a log's tail, "
        "or the page before one already shown); `more` then says there are earlier lines",
    )  # fmt: skip
    step = serializers.CharField(required=False, help_text="only this step's lines")
    level = serializers.ChoiceField(choices=LogLevel.choices, required=False, help_text="this level and above")
    limit = serializers.IntegerField(min_value=1, max_value=LIMIT_MAX, default=LIMIT_DEFAULT)


class LogPageSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True)
    last_seq = serializers.IntegerField(help_text="pass it as `after` to get the next lines")
    more = serializers.BooleanField(help_text="more lines are stored beyond this page")


class PlainTextRenderer(BaseRenderer):
    """Lets `Accept: text/plain` through content negotiation. It never renders: the log is
    streamed, and errors are JSON (JsonErrors)."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"


class RunLogsView(generics.GenericAPIView):
    queryset = Run.objects.all()
    lookup_url_kwarg = "id"

    @extend_schema(parameters=[LogQuerySerializer], responses=LogPageSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        run = self.get_object()
        # `?step=&level=` (empty) means "not given", as a form would send it.
        query = LogQuerySerializer(data={k: v for k, v in request.query_params.items() if v != ""})
        query.is_valid(raise_exception=True)
        return Response(log_page(run, **query.validated_data))


class RunLogTextView(JsonErrors, generics.GenericAPIView):  # only the log itself is text
    queryset = Run.objects.all()
    lookup_url_kwarg = "id"
    renderer_classes = [PlainTextRenderer]
    metadata_class = None  # OPTIONS: 405 in JSON; the plain-text renderer could not render a description

    @extend_schema(
        operation_id="runs_log_text",
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="one line per log line")},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        run = self.get_object()
        # daphne needs an async iterator to stream; a sync one would be read whole into memory.
        lines = (
            _text_async(run.pk, run.last_seq)
            if isinstance(request._request, ASGIRequest)
            else _text(run.pk, run.last_seq)
        )
        response = StreamingHttpResponse(lines, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="{run.job_id}-{run.pk}.log"'
        return response


def log_page(
    run: Run,
    *,
    after: int,
    limit: int,
    step: str | None = None,
    level: str | None = None,
    before: int | None = None,
) -> dict[str, Any]:
    """Up to `limit` lines after `after`; `last_seq` is where the next page starts.
    With `before`, the last `limit` lines below it instead (see `log_tail`)."""
    upto = run.last_seq  # lines are stored with last_seq in one transaction: all ≤ upto are visible
    if before is not None:
        return log_tail(run.pk, after=after, upto=min(upto, before - 1), limit=limit, step=step, level=level)
    rows = list(
        selectors.log_lines(run_id=run.pk, after=after, upto=upto, step=step, level=level).values_list(*READ_FIELDS)[
            : limit + 1
        ]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    # With filters, lines up to `upto` that did not match need no second look.
    last_seq = rows[-1][0] if more else max(upto, after)
    return {"lines": [line_dict(*row) for row in rows], "last_seq": last_seq, "more": more}


def log_tail(
    run_id: str, *, after: int, upto: int, limit: int, step: str | None = None, level: str | None = None
) -> dict[str, Any]:
    """The last `limit` lines with after < seq ≤ upto, in seq order; `more` says earlier ones
    exist. Read newest first so that a long log's tail costs one short index scan."""
    lines = selectors.log_lines(run_id=run_id, after=after, upto=upto, step=step, level=level)
    rows = list(lines.order_by("-seq").values_list(*READ_FIELDS)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit][::-1]
    return {"lines": [line_dict(*row) for row in rows], "last_seq": max(upto, after), "more": more}


def _chunk(run_id: str, after: int, upto: int) -> tuple[str, int]:
    rows = list(selectors.log_lines(run_id=run_id, after=after, upto=upto).values_list(*READ_FIELDS)[:TEXT_CHUNK])
    return "".join(text_line(*row) + "\n" for row in rows), (rows[-1][0] if rows else upto)


def _text(run_id: str, upto: int) -> Iterator[str]:
    after = 0
    while after < upto:
        text, after = _chunk(run_id, after, upto)
        if text:
            yield text


async def _text_async(run_id: str, upto: int) -> AsyncIterator[str]:
    after = 0
    while after < upto:
        text, after = await sync_to_async(_chunk)(run_id, after, upto)
        if text:
            yield text
