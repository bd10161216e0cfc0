"""ModelTemplate operator: serves SGP Model Templates as Launch-style Kubernetes workloads."""

GROUP = "launch.modelops.dev"
VERSION = "v1alpha1"
KIND = "ModelTemplate"
PLURAL = "modeltemplates"
MODEL_KIND = "Model"
MODEL_PLURAL = "models"
FINE_TUNING_JOB_KIND = "FineTuningJob"
FINE_TUNING_JOB_PLURAL = "finetuningjobs"
API_VERSION = f"{GROUP}/{VERSION}"

__version__ = "0.1.0"
