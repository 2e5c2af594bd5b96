# The audit trail moved to the core app (core/migrations/0001_initial.py takes it over).
# Only the migration state changes: the table runs_auditevent stays as it is, rows and indexes.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0007_lean_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        ),
    ]
