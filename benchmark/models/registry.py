"""The model registry: builders take (num_classes, input_shape, **options) and return an nn.Module.

``timm:<name>`` builds any timm model. A builder's keyword options are the only options a suite may
give (``model.options``); anything else is an error naming the valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from prunebench.models.init import apply_init
from prunebench.registry import Registry
from prunebench.spec import ModelSpec

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model", builtins=(
    "prunebench.models.lenet", "prunebench.models.resnet", "prunebench.models.vgg", "prunebench.models.wrn"))


class ModelError(ValueError):
    """A model option the builder does not take, or a timm model that does not exist."""


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    return MODELS.register(name)


def model_names() -> list[str]:
    return MODELS.names() + ["timm:<name>"]


def _builder(name: str) -> ModelBuilder:
    if name.startswith("timm:"):
        return _timm_builder(name.removeprefix("timm:"))
    return MODELS.get(name)


def _timm_builder(timm_name: str) -> ModelBuilder:
    def build(num_classes: int, input_shape: tuple[int, int, int], **options) -> nn.Module:
        import timm

        if timm_name not in timm.list_models():
            raise ModelError(f"timm has no model {timm_name!r}")
        return timm.create_model(timm_name, num_classes=num_classes, in_chans=input_shape[0], **options)

    return build


def option_names(name: str) -> list[str] | None:
    """The options a builder accepts (None: any, as for timm models)."""
    params = inspect.signature(_builder(name)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in ("num_classes", "input_shape")]


def check_model(spec: ModelSpec) -> None:
    """Raise ModelError for an unknown model or option (before anything runs)."""
    valid = option_names(spec.name)
    if valid is not None:
        unknown = sorted(set(spec.options) - set(valid))
        if unknown:
            raise ModelError(f"model {spec.name!r} has no option {', '.join(map(repr, unknown))}; options: {', '.join(valid) or 'none'}")


def build_model(spec: ModelSpec, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """Build on the CPU under the caller's RNG state (seed it first for a reproducible init)."""
    check_model(spec)
    model = _builder(spec.name)(num_classes=num_classes, input_shape=tuple(input_shape), **spec.options)
    apply_init(model, spec.init)
    return model
