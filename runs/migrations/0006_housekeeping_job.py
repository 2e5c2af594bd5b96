"""The built-in housekeeping job: a catalogue job like any other, with its own runs."""

from django.db import migrations

JOB_ID = "housekeeping"


def create_job(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    Step = apps.get_model("jobs", "Step")
    if Job.objects.filter(id=JOB_ID).exists():
        return
    job = Job.objects.create(
        id=JOB_ID,
        name="Housekeeping: retention",
        description="Deletes runs, their steps and log lines finished more than the retention "
        "(admin › settings › retention days) ago, in small batches. Built in.",
        schedule="17 3 * * *",
        timezone="UTC",
        catchup="latest",
        max_concurrent_runs=1,
        params={},
    )
    Step.objects.create(
        job=job, position=1, name="purge", type="python", op_kwargs={"callable": "workers.housekeeping:purge_expired"}
    )


def remove_job(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    Run = apps.get_model("runs", "Run")
    Run.objects.filter(job_id=JOB_ID).delete()
    Job.objects.filter(id=JOB_ID).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("runs", "0005_run_finished_at"),
    ]

    operations = [migrations.RunPython(create_job, remove_job)]
