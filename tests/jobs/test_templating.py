from __future__ import annotations

import pytest

from jobs.templating import MissingParam, references, render

PARAMS = {"n": 3, "name": "eu", "flags": [1, 2], "on": True}


def test_a_whole_reference_keeps_the_json_type() -> None:
    assert render({"a": "{{ params.n }}", "b": "{{params.flags}}", "c": " {{ params.on }} "}, PARAMS) == {
        "a": 3, "b": [1, 2], "c": True,
    }  # fmt: skip


def test_a_reference_inside_text_is_inserted_as_text() -> None:
    assert render("region={{ params.name }} n={{ params.n }} f={{ params.flags }}", PARAMS) == "region=eu n=3 f=[1, 2]"


def test_nested_values_are_rendered_and_others_left_alone() -> None:
    assert render({"x": ["{{ params.name }}", 5, None], "y": {"z": "{{ params.n }}"}}, PARAMS) == {
        "x": ["eu", 5, None], "y": {"z": 3},
    }  # fmt: skip


def test_no_expressions_only_plain_names() -> None:
    assert render("{{ params.n + 1 }} {{ 7*7 }}", PARAMS) == "{{ params.n + 1 }} {{ 7*7 }}"


def test_a_missing_param_raises_with_its_name() -> None:
    with pytest.raises(MissingParam) as missing:
        render({"a": "{{ params.zone }}"}, PARAMS)
    assert missing.value.name == "zone"


def test_references_lists_every_name() -> None:
    assert references({"a": ["{{ params.x }}-{{ params.y }}"], "b": "{{ params.x }}", "c": 1}) == {"x", "y"}
