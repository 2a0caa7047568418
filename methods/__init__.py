"""The built-in pruning methods, each registered against benchmark.api."""

from methods import cyclic, dense, imp, lrr, oneshot, pai, single_neuron  # noqa: F401
