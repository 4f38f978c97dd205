from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "stratbox.instances"
    label = "instances"
    verbose_name = "Instances"
