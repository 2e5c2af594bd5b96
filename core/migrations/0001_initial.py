# core takes over AuditEvent from runs (runs/migrations/0008_auditevent_to_core.py) with its
# table runs_auditevent and its indexes as they are: only the migration state is created here.
# Its content type moves too, so permissions and admin log entries granted on it still apply.

import django.utils.timezone
from django.db import migrations, models


def adopt_content_type(apps, schema_editor):
    _relabel(apps, schema_editor, old="runs", new="core")


def return_content_type(apps, schema_editor):
    _relabel(apps, schema_editor, old="core", new="runs")


def _relabel(apps, schema_editor, *, old, new):
    # On a fresh database neither exists yet: post_migrate creates core's after every migration.
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
    if not content_types.filter(app_label=new, model="auditevent").exists():
        content_types.filter(app_label=old, model="auditevent").update(app_label=new)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("runs", "0008_auditevent_to_core"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ("actor", models.CharField(max_length=200)),
                        ("action", models.CharField(max_length=50)),
                        ("object_type", models.CharField(max_length=50)),
                        ("object_id", models.CharField(max_length=200)),
                        ("diff", models.JSONField(blank=True, default=dict)),
                    ],
                    options={
                        "db_table": "runs_auditevent",
                        "ordering": ["-at", "-id"],
                        "indexes": [
                            models.Index(fields=["object_type", "object_id"], name="audit_object"),
                            models.Index(fields=["action"], name="audit_action"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(adopt_content_type, return_content_type),
    ]
