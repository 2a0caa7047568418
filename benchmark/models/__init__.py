"""Model registry and the built-in architectures (imported when a model is first looked up)."""

from prunebench.models.registry import MODELS, ModelError, build_model, check_model, model_names, register_model

__all__ = ["MODELS", "ModelError", "build_model", "check_model", "model_names", "register_model"]
