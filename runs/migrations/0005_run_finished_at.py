from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0004_site_settings"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["finished_at"], name="run_finished_at"),
        ),
    ]
