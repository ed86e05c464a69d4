"""How the site talks to PostgreSQL: statements the annotator's requests run over and over are
prepared on the connection, so the server does not parse and plan them each time."""

import pytest
from django.db import connection

from annotation.models import Campaign

pytestmark = pytest.mark.django_db


def test_a_statement_run_again_and_again_is_prepared_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are psycopg's and PostgreSQL's")

    def prepared() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return {row[0] for row in cursor.fetchall()}

    before = prepared()
    for pk in range(1, 8):
        list(Campaign.objects.filter(pk=pk).values_list("status", flat=True))
    new = prepared() - before
    assert any('FROM "annotation_campaign"' in statement for statement in new), new
