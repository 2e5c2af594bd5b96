"""runs.prepared: PREPARE once per database session, EXECUTE after."""

from __future__ import annotations

import pytest
from django.db import connection

from runs.prepared import prepared

pytestmark = pytest.mark.django_db

SQL = "SELECT %s::int + %s::int, 'a%%'"


def session_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements ORDER BY name")
        return [name for (name,) in cursor.fetchall()]


def run(sql: str, params: list[int]) -> tuple[object, ...]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def test_a_statement_is_prepared_once_per_session_and_answers_as_the_plain_one() -> None:
    first = prepared("nomaflow_test_sum", SQL)
    again = prepared("nomaflow_test_sum", SQL)

    assert first == again == "EXECUTE nomaflow_test_sum(%s, %s)"
    assert session_statements().count("nomaflow_test_sum") == 1
    assert run(first, [2, 3]) == run(SQL, [2, 3]) == (5, "a%")


@pytest.mark.django_db(transaction=True)  # the test closes the connection: no enclosing transaction
def test_a_new_session_prepares_again() -> None:
    prepared("nomaflow_test_sum", SQL)
    connection.close()  # what CONN_MAX_AGE or a database restart does

    statement = prepared("nomaflow_test_sum", SQL)

    assert session_statements() == ["nomaflow_test_sum"]
    assert run(statement, [1, 1]) == (2, "a%")
