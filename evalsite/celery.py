"""The Celery app. Workers consume the `cpu` queue (imports, transcodes, exports) and/or the `gpu` queue
(generation, video metrics, training); see the README for starting each on its own machine."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")

app = Celery("evalsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# metrics/ holds two parts; the automatic video metrics' jobs live in their own package.
app.autodiscover_tasks(["metrics.automatic"])
