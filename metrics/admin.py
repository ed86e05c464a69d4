"""Django looks for an app's admin here; the registrations live beside the models they show."""

import metrics.automatic.admin  # noqa: F401
