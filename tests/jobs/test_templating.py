from __future__ import annotations

import pytest

from core.errors import StepConfigError
from jobs.templating import MissingParam, ParamRule, references, render, render_op_kwargs
from workers.steps.ldap_sync import LdapSyncStep, escape_filter_value
from workers.steps.sql_query import SQL_TEXT

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


# --- per-field rules a step type declares (StepType.param_rules) ----------------------------

SQL = {"sql": SQL_TEXT}
FILTER = {"filter": ParamRule(escape=escape_filter_value)}


def test_a_reference_in_sql_is_refused_with_the_fix() -> None:
    with pytest.raises(StepConfigError) as refused:
        render_op_kwargs({"connector": "db", "sql": "SELECT * FROM t WHERE name = '{{ params.name }}'"}, PARAMS, SQL)

    assert refused.value.field == "sql"
    assert str(refused.value) == (
        "sql: must not contain {{ params.name }}: it would be pasted into SQL; bind it instead: "
        '"parameters": {"name": "{{ params.name }}"} and write %(name)s (postgres) or :name (sqlite)'
    )


@pytest.mark.parametrize("sql", ["{{ params.name }}", ["select 1", "select {{params.zone}}"]])
def test_a_whole_or_listed_sql_reference_is_refused_even_for_a_missing_param(sql: object) -> None:
    with pytest.raises(StepConfigError, match="would be pasted into SQL"):
        render_op_kwargs({"sql": sql, "parameters": {"x": "{{ params.zone }}"}}, PARAMS, SQL)


def test_parameters_beside_sql_are_still_rendered_with_their_json_type() -> None:
    rendered = render_op_kwargs({"sql": "select :n", "parameters": {"n": "{{ params.n }}"}}, PARAMS, SQL)

    assert rendered == {"sql": "select :n", "parameters": {"n": 3}}


def test_a_filter_reference_is_escaped_per_rfc_4515() -> None:
    params = {"who": "user1*)(uid=*\\", "nul": "a\x00b", "brace": "{x}", "n": 7}
    op_kwargs = {
        "filter": "(&(uid={{ params.who }})(cn={{ params.nul }})(sn={{ params.brace }}))",
        "k": "{{ params.n }}",
    }

    rendered = render_op_kwargs(op_kwargs, params, FILTER)

    assert rendered == {"filter": "(&(uid=user1\\2a\\29\\28uid=\\2a\\5c)(cn=a\\00b)(sn=\\7bx\\7d))", "k": 7}


def test_a_whole_filter_reference_is_escaped_text_too() -> None:
    assert render_op_kwargs({"filter": "{{ params.f }}"}, {"f": "(uid=*)"}, FILTER) == {"filter": "\\28uid=\\2a\\29"}
    assert render_op_kwargs({"filter": "{{ params.n }}"}, PARAMS, FILTER) == {"filter": "3"}


def test_a_base_dn_reference_is_one_escaped_rdn_value() -> None:
    rules = LdapSyncStep.param_rules
    op_kwargs = {"base_dn": "ou={{ params.ou }},dc=example,dc=org"}
    rendered = render_op_kwargs(op_kwargs, {"ou": "people,dc=other"}, rules)
    assert rendered == {"base_dn": "ou=people\\,dc\\=other,dc=example,dc=org"}
