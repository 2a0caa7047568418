"""The built-in pruning methods, each registered against prunebench.api."""

from prunebench.methods import cyclic, dense, imp, lrr, oneshot, pai, single_neuron  # noqa: F401
