from django.urls import path
from django.views.generic import RedirectView

from . import docs, run_detail, runs_list, schedule, views, workers

app_name = "frontend"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="frontend:home"), name="root"),
    path("nomaflow/", views.home, name="home"),
    path("nomaflow/login/", views.login, name="login"),
    path("nomaflow/logout/", views.logout, name="logout"),
    path("nomaflow/runs/", runs_list.all_runs, name="runs"),
    path("nomaflow/runs/<slug:id>", run_detail.run_detail, name="run_detail"),
    path("nomaflow/jobs/<slug:job_id>/runs/", runs_list.job_runs, name="job_runs"),
    path("nomaflow/schedule/", schedule.schedule, name="schedule"),
    path("nomaflow/workers/", workers.workers, name="workers"),
    path("nomaflow/docs/troubleshoot/", docs.troubleshoot, name="troubleshoot"),
]
