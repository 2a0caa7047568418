"""Model registry and the built-in architectures."""

from prunebench.models import lenet, resnet, vgg  # noqa: F401  (registers the built-in models)
from prunebench.models.registry import ModelError, build_model, check_model, model_names, register_model

__all__ = ["ModelError", "build_model", "check_model", "model_names", "register_model"]
