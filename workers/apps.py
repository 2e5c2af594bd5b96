from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self) -> None:
        # jobs validates steps against the types registered here (jobs/step_types.py): it may
        # not import workers, which is to its right. Imported here, once every app is loaded,
        # as a step type's module may reach for models.
        from jobs import step_types

        from .steps import REGISTRY

        for step_type in REGISTRY.values():
            step_types.register(step_type)
