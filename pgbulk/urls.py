from django.urls import path

from pgbulk import change_views, job_views

app_name = "pgbulk"

urlpatterns = [
    path("jobs/", job_views.job_list, name="job-list"),
    path("jobs/<uuid:job_id>/", job_views.job_detail, name="job-detail"),
    path("jobs/<uuid:job_id>/progress/", job_views.job_progress, name="job-progress"),
    path("jobs/<uuid:job_id>/cancel/", job_views.job_cancel, name="job-cancel"),
    path("jobs/<uuid:job_id>/errors.csv", job_views.job_errors_csv, name="job-errors-csv"),
    path("jobs/<uuid:job_id>/changes.csv", change_views.job_changes_csv, name="job-changes-csv"),
    path("jobs/<uuid:job_id>/undo/", change_views.job_undo, name="job-undo"),
]
