"""Suites: YAML with line marks -> validated SuiteSpec -> a list of RunSpecs.

Loading is safe (yaml.SafeLoader), rejects duplicate keys, and remembers where every key was
written, so any error names the file, the line, the key path and the closest valid name. A suite
may ``extends:`` another (mappings merge, lists replace; an error in an inherited key names the file
that wrote it). ``--reduced`` merges the suite's ``reduced:`` block over it; ``--set a.b=v`` merges a
value given on the command line. Within ``methods``, an override addresses an entry by its label
(``--set methods.imp.levels=2``). A method entry's ``train:``, ``prune:`` and ``model:`` merge over the
suite's (``model: {options: {width: 32}}`` trains that entry's runs on a wider or narrower network).
"""

from __future__ import annotations

import functools
import itertools
import math
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, ValidationError

from prunebench.api import Method, UnknownName, get_method, get_scorer
from prunebench.data import dataset_info, expected_shape
from prunebench.masks import ALLOCATIONS, MaskError, prunable_parameters
from prunebench.models import ModelError, build_model, check_model
from prunebench.planner import plan_training
from prunebench.references import ClaimError, parse_claim
from prunebench.registry import closest
from prunebench.spec import (
    PRODUCER_ROLES,
    RESERVED_METHOD_KEYS,
    GoldenFile,
    ModelSpec,
    PruneSpec,
    ReferencesSpec,
    RunSpec,
    SuiteSpec,
    TrainSpec,
    WeightPoint,
)


class SuiteError(ValueError):
    """An invalid suite; the message holds one line per problem, each with file:line and key path."""


ENTRY_KEYS = (*RESERVED_METHOD_KEYS, "model")  # a method entry's keys that are not the method's parameters


# ---------------------------------------------------------------------------------- marked YAML
class MarkedDict(dict):
    """A mapping that remembers where each key was written ("file:line")."""

    def __init__(self, *args: Any, where: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.where = where
        self.key_where: dict[Any, str] = {}


class MarkedList(list):
    def __init__(self, *args: Any, where: str = "") -> None:
        super().__init__(*args)
        self.where = where
        self.item_where: list[str] = []


def _loader_for(path: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def at(node: yaml.Node) -> str:
        return f"{path}:{node.start_mark.line + 1}"

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> MarkedDict:
        loader.flatten_mapping(node)
        out = MarkedDict(where=at(node))
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise SuiteError(f"{at(key_node)}: duplicate key {key!r} (first written at {out.key_where[key]})")
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_where[key] = at(key_node)
        return out

    def sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> MarkedList:
        out = MarkedList((loader.construct_object(item, deep=True) for item in node.value), where=at(node))
        out.item_where = [at(item) for item in node.value]
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, sequence)
    return Loader


def load_yaml(path: str | Path) -> MarkedDict:
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SuiteError(f"{path}: cannot read suite ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise SuiteError(f"{path}: not a text file (byte 0x{e.object[e.start]:02x} at offset {e.start} is not UTF-8)") from None
    try:
        data = yaml.load(text, Loader=_loader_for(path))  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise SuiteError(f"{line}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, MarkedDict):
        raise SuiteError(f"{path}:1: a suite is a mapping of keys (name, data, model, train, ...)")
    return data


# ------------------------------------------------------------------------------------- merging
def merge(base: Any, override: Any) -> Any:
    """Deep-merge ``override`` over ``base``: mappings merge, anything else replaces. Keeps marks."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    out = MarkedDict(base, where=getattr(base, "where", ""))
    out.key_where = dict(getattr(base, "key_where", {}))
    for key, value in override.items():
        if key == "methods" and isinstance(base.get(key), list) and isinstance(value, dict):
            out[key] = _merge_methods(base[key], value)
        else:
            out[key] = merge(base.get(key), value) if key in base else value
        if key in getattr(override, "key_where", {}):
            out.key_where[key] = override.key_where[key]
    return out


def _merge_methods(entries: list, overrides: dict) -> MarkedList:
    """Apply {label: overrides} to the method entries of that label."""
    labels = [_label(e) for e in entries]
    out = MarkedList(entries, where=getattr(entries, "where", ""))
    out.item_where = list(getattr(entries, "item_where", []))
    for label, change in overrides.items():
        if label not in labels:
            where = getattr(overrides, "key_where", {}).get(label, "")
            raise SuiteError(f"{where}: methods.{label}: no method entry labelled {label!r}{_suggest(str(label), labels)}")
        i = labels.index(label)
        out[i] = merge(entries[i], change)
    return out


def _label(entry: Any) -> str:
    return entry.get("label", entry.get("name")) if isinstance(entry, dict) else str(entry)


def load_with_extends(path: str | Path, _seen: tuple[str, ...] = ()) -> MarkedDict:
    path = Path(path)
    key = str(path.resolve())
    if key in _seen:
        raise SuiteError(f"{path}: extends cycle: {' -> '.join([*_seen, key])}")
    data = load_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise SuiteError(f"{data.key_where['extends']}: extends: expected a file name")
    parent_path = (path.parent / parent) if not Path(parent).is_absolute() else Path(parent)
    if not parent_path.is_file():
        raise SuiteError(f"{data.key_where['extends']}: extends: no such file {parent_path}")
    return merge(load_with_extends(parent_path, (*_seen, key)), data)


def parse_set(assignment: str) -> MarkedDict:
    """'train.epochs=3' -> {'train': {'epochs': 3}}, the value parsed as YAML."""
    where = f"--set {assignment}"
    if "=" not in assignment:
        raise SuiteError(f"{where}: expected KEY.PATH=VALUE")
    path, raw = assignment.split("=", 1)
    keys = [k for k in path.strip().split(".")]
    if not all(keys):
        raise SuiteError(f"{where}: empty key in {path!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise SuiteError(f"{where}: value is not valid YAML ({e})") from None
    node: Any = value
    for key in reversed(keys):
        wrapped = MarkedDict({key: node}, where=where)
        wrapped.key_where[key] = where
        node = wrapped
    return node


# ---------------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class ResolvedMethod:
    label: str
    method: type[Method]
    train: TrainSpec
    prune: PruneSpec
    variants: list[tuple[str, dict[str, Any]]]  # (variant name, validated params) per sweep point
    id_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> the params its run ids hash
    producers: dict[str, str] = field(default_factory=dict)  # role -> label of the producing entry
    model: ModelSpec | None = None  # the entry's own ``model:`` merged over the suite's; None: the suite's model as it is
    trains: dict[str, TrainSpec] = field(default_factory=dict)  # variant -> the train its method derived from ``train``
    keep_weights: tuple[WeightPoint, ...] = ()  # where its runs keep their model state (``keep_weights:``)

    def model_of(self, suite: SuiteSpec) -> ModelSpec | None:
        return self.model if self.model is not None else suite.model

    def train_of(self, variant: str) -> TrainSpec:
        return self.trains.get(variant, self.train)


@dataclass(frozen=True)
class Suite:
    """A validated suite: its spec, its methods resolved, and the file it came from."""

    spec: SuiteSpec
    methods: list[ResolvedMethod]
    path: str

    @property
    def name(self) -> str:
        return self.spec.name

    def runs(self) -> list[RunSpec]:
        """One RunSpec per method entry, sweep point and seed, in suite order. A run that takes masks
        or signs from another entry names the producer's run of the same seed (and sweep point).
        Expanded once per Suite (both are immutable); each call returns a new list of the same specs."""
        return list(self._runs)

    @functools.cached_property
    def _runs(self) -> tuple[RunSpec, ...]:
        by_label = {m.label: m for m in self.methods}
        ids: dict[tuple[str, str, int], str] = {}
        out: dict[tuple[str, str, int], RunSpec] = {}
        for m in _producers_first(self.methods):
            for variant, params in m.variants:
                for seed in self.spec.seeds:
                    producers = {role: ids[(label, _producer_variant(by_label[label], variant), seed)]
                                 for role, label in m.producers.items()}
                    spec = RunSpec(
                        suite=self.name, label=m.label, variant=variant, data=self.spec.data, model=m.model_of(self.spec),
                        train=m.train_of(variant), prune=m.prune, method=m.method.name, params=params, seed=seed, producers=producers,
                        id_params=m.id_params.get(variant), keep_weights=m.keep_weights,
                    )
                    ids[(m.label, variant, seed)] = spec.run_id
                    out[(m.label, variant, seed)] = spec
        return tuple(out[(m.label, v, seed)] for m in self.methods for v, _ in m.variants for seed in self.spec.seeds)


def _producers_first(methods: Sequence[ResolvedMethod]) -> list[ResolvedMethod]:
    """Entries ordered so that every producer comes before its consumers; entries in a cycle (or
    waiting on a missing producer) are left out, which validation reports."""
    done: list[ResolvedMethod] = []
    pending = list(methods)
    while pending:
        ready = [m for m in pending if all(label in {d.label for d in done} for label in m.producers.values())]
        if not ready:
            break
        done += ready
        pending = [m for m in pending if m not in ready]
    return done


def _producer_variant(producer: ResolvedMethod, variant: str) -> str:
    """The producer's sweep point for a consumer's: the same one, or the producer's only one."""
    names = [v for v, _ in producer.variants]
    return variant if variant in names else names[0]


def load_suite(path: str | Path, *, reduced: bool = False, overrides: Sequence[str] = ()) -> Suite:
    """Load, merge and validate a suite; every problem found is reported in one SuiteError."""
    raw = load_with_extends(path)
    if reduced:
        block = raw.get("reduced")
        if not block:
            raise SuiteError(f"{path}: --reduced given but the suite has no 'reduced:' block")
        raw.pop("references", None)  # the paper's numbers do not apply at CI scale; the golden file's do
        raw = merge(raw, block)
        raw["reduced_applied"] = True
    for assignment in overrides:
        raw = merge(raw, parse_set(assignment))
    errors: list[str] = []
    try:
        spec = SuiteSpec.model_validate(raw)
        _check_references(spec, raw, errors)
    except ValidationError as e:
        spec = None
        top = ("extends",)  # popped before validation: its misspelling is worth a suggestion too
        errors += [_describe(err, raw, SuiteSpec, extra_valid=top if len(err["loc"]) == 1 else ()) for err in e.errors()]
    # Method entries are checked even when the rest failed, so one pass reports every problem;
    # their train/prune blocks only when the suite's own validated (else the same error repeats).
    entries = raw.get("methods") if isinstance(raw.get("methods"), list) else []
    methods = [m for i, entry in enumerate(entries) if (m := _resolve_method(i, entry, raw, errors, spec is not None))]
    if spec is not None and not errors:
        _check_prunable(spec, methods, raw, errors)
    labels = [m.label for m in methods]
    if not errors:
        _check_producers(methods, raw, errors)
    if spec is not None:
        _check_reference_labels(spec, labels, raw, errors)
        _check_analyses(spec, methods, raw, errors)
    for label in {lb for lb in labels if labels.count(lb) > 1}:
        errors.append(f"{_where(raw, ('methods',))}: methods: label {label!r} used twice; give entries distinct 'label:'s")
    if errors:
        raise SuiteError("\n".join(errors))
    if reduced:
        spec = _with_golden(spec, golden_path(path, spec.name))
    suite = Suite(spec, methods, str(path))
    _check_plans(suite, raw)
    return suite


def _check_plans(suite: Suite, raw: MarkedDict) -> None:
    """Run every method script of the first seed against the planner, so what only a run would find
    (a rewind point or a mask-update step beyond the level) is a suite error, with its line."""
    index = {m.label: i for i, m in enumerate(suite.methods)}
    errors = []
    for run in suite.runs():
        if run.seed != suite.spec.seeds[0]:
            continue
        try:
            plan_training(run)
        except (ValueError, ValidationError) as e:
            i = index[run.label]
            variant = f" [{run.variant}]" if run.variant else ""
            errors.append(f"{_where(raw, ('methods', i))}: methods[{i}] ({run.label}{variant}): {e}")
    if errors:
        raise SuiteError("\n".join(dict.fromkeys(errors)))


def golden_path(suite_path: str | Path, name: str) -> Path:
    """Where a suite's golden references live: golden/<name>.yaml beside the suite file."""
    return Path(suite_path).parent / "golden" / f"{name}.yaml"


def load_golden(path: Path) -> GoldenFile:
    raw = load_yaml(path)
    try:
        return GoldenFile.model_validate(raw)
    except ValidationError as e:
        raise SuiteError("\n".join(_describe(err, raw, GoldenFile) for err in e.errors())) from None


def _with_golden(spec: SuiteSpec, path: Path) -> SuiteSpec:
    """Add the golden file's numbers (and its tolerance) to a reduced suite's references."""
    if not path.is_file():
        return spec
    golden = load_golden(path)
    refs = ReferencesSpec(tolerance=golden.tolerance, numbers=[*spec.references.numbers, *golden.numbers],
                          claims=spec.references.claims, claim_margin=spec.references.claim_margin)
    return spec.model_copy(update={"references": refs})


def _check_references(spec: SuiteSpec, raw: MarkedDict, errors: list[str]) -> None:
    if spec.data is None or spec.model is None:
        return
    try:
        dataset_info(spec.data.dataset)
    except UnknownName as e:
        errors.append(f"{_where(raw, ('data', 'dataset'))}: data.dataset: {e}")
    try:
        check_model(spec.model)
    except (UnknownName, ModelError, ValueError) as e:
        errors.append(f"{_where(raw, ('model', 'name'))}: model: {e}")


def _check_reference_labels(spec: SuiteSpec, labels: list[str], raw: MarkedDict, errors: list[str]) -> None:
    """A reference or claim naming a label the suite does not have would silently never match: refuse it."""
    for i, ref in enumerate(spec.references.numbers):
        if ref.method not in labels:
            errors.append(f"{_where(raw, ('references', 'numbers', i, 'method'))}: references.numbers[{i}].method: "
                          f"no method labelled {ref.method!r}{_suggest(ref.method, labels)}")
    for i, claim in enumerate(spec.references.claims):
        try:
            parsed = parse_claim(claim.claim)
        except ClaimError:
            continue  # reported where claims are validated
        named = [*parsed.left.labels, *parsed.right.labels, *(b.label for b in parsed.budgets)]
        for label in dict.fromkeys(lb for lb in named if lb is not None and lb not in labels):
            errors.append(f"{_where(raw, ('references', 'claims', i, 'claim'))}: references.claims[{i}]: {claim.claim!r} "
                          f"names no method of the suite: {label!r}{_suggest(label, labels)}")


def _check_analyses(spec: SuiteSpec, methods: list[ResolvedMethod], raw: MarkedDict, errors: list[str]) -> None:
    """Analysed labels exist and keep the states the analyses read: every level's end."""
    if spec.analyses is None:
        return
    if spec.analyses.lmc is None and spec.analyses.hessian is None:
        errors.append(f"{_where(raw, ('analyses',))}: analyses: name what to measure: lmc: {{...}}, hessian: {{...}} or both")
    by_label = {m.label: m for m in methods}
    for j, label in enumerate(spec.analyses.methods):
        where = f"{_where(raw, ('analyses', 'methods', j))}: analyses.methods[{j}]"
        m = by_label.get(label)
        if m is None:
            errors.append(f"{where}: no method entry labelled {label!r}{_suggest(label, list(by_label))}")
        elif not any(k.level == "every" and k.at is None for k in m.keep_weights):
            errors.append(f"{where}: {label!r} keeps no state at every level's end, which the analyses read: "
                          "give its entry keep_weights: [{level: every}]")


def _resolve_method(i: int, entry: Any, raw: MarkedDict, errors: list[str], parts: bool = True) -> ResolvedMethod | None:
    loc = ("methods", i)
    if not isinstance(entry, dict) or "name" not in entry:
        typo = next((k for k in entry if closest(str(k), ["name"])), None) if isinstance(entry, dict) else None
        hint = f"; found {typo!r}: did you mean 'name'?" if typo is not None else ""
        errors.append(f"{_where(raw, loc)}: methods[{i}]: a method entry is a mapping with at least 'name:'{hint}")
        return None
    try:
        method = get_method(str(entry["name"]))
    except UnknownName as e:
        errors.append(f"{_where(raw, (*loc, 'name'))}: methods[{i}].name: {e}")
        return None
    label = str(entry.get("label", method.name))
    n_errors = len(errors)
    train = prune = None
    if parts and not method.standalone and any(raw.get(k) is None for k in ("data", "model", "train")):
        missing = [k for k in ("data", "model", "train") if raw.get(k) is None]
        errors.append(f"{_where(raw, loc)}: methods[{i}] ({label}): method {method.name!r} trains a model and needs "
                      f"the suite's {', '.join(missing)}")
        parts = False
    if parts and not method.standalone:
        train = _validate_part(TrainSpec, merge(raw["train"], entry.get("train", {})), raw, (*loc, "train"), ("train",), errors)
        prune = _validate_part(PruneSpec, merge(raw.get("prune", {}), entry.get("prune", {})), raw, (*loc, "prune"), ("prune",), errors)
        if prune is not None and method.prunes:
            _check_prune(prune, raw, loc, errors)
    model = None
    if "model" in entry and method.standalone:
        errors.append(f"{_where(raw, (*loc, 'model'))}: methods[{i}].model: method {method.name!r} brings its own model; "
                      "'model:' has no effect on it")
    elif "model" in entry and parts:
        model = _validate_part(ModelSpec, merge(raw["model"], entry["model"]), raw, (*loc, "model"), ("model",), errors)
        if model is not None:
            try:
                check_model(model)
            except (UnknownName, ModelError, ValueError) as e:
                errors.append(f"{_where(raw, (*loc, 'model'), ('model',))}: methods[{i}].model: {e}")
    params = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    sweep = entry.get("sweep") or {}
    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        errors.append(f"{_where(raw, (*loc, 'sweep'))}: methods[{i}].sweep: a mapping of parameter -> non-empty list of values")
        return None
    variants, defaults, trains = [], {}, {}
    names = list(sweep)
    for values in itertools.product(*sweep.values()) if sweep else [()]:
        point = dict(zip(names, values))
        try:
            validated = method.Params.model_validate({**params, **point})
        except ValidationError as e:
            for err in e.errors():
                swept = bool(err["loc"]) and err["loc"][0] in sweep  # written under sweep: (maybe in a reduced block)
                errors.append(_describe(err, raw, method.Params, prefix=(*loc, "sweep") if swept else loc,
                                        extra_valid=ENTRY_KEYS, what=f"method {method.name!r}"))
            break
        variant = ",".join(f"{k}={v}" for k, v in point.items())
        params_of_run, defaults[variant] = resolved_params(validated)
        variants.append((variant, params_of_run))
        # A method may derive its runs' training from the entry's (cyclic `budget: split`: train.epochs / cycles).
        # Not (yet) declared on api.Method, so looked up; a ValueError is the entry's error.
        derive = getattr(method, "resolve_train", None)
        if derive is not None and train is not None:
            try:
                trains[variant] = derive(validated, train)
            except ValueError as e:
                at = f" [{variant}]" if variant else ""
                errors.append(f"{_where(raw, loc)}: methods[{i}] ({label}{at}): {e}")
    producers = _parse_from(entry.get("from"), raw, loc, errors)
    keep = _parse_keep_weights(entry.get("keep_weights"), train, raw, (*loc, "keep_weights"), errors)
    if len(errors) > n_errors or not parts:
        return None
    trains = {v: derived for v, derived in trains.items() if derived != train}  # only where the method changed it
    return ResolvedMethod(label, method, train, prune, variants, defaults, producers, model, trains, keep)


def _parse_keep_weights(value: Any, train: TrainSpec | None, raw: MarkedDict, loc: tuple, errors: list[str]) -> tuple[WeightPoint, ...]:
    """``keep_weights: [{level: 0, at: 10ep}, {level: every}]``: points inside the level's schedule."""
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.append(f"{_where(raw, loc)}: {_dotted(loc)}: a list of points such as {{level: 0, at: 10ep}} or {{level: every}}")
        return ()
    points = []
    for j, item in enumerate(value):
        point = _validate_part(WeightPoint, item, raw, (*loc, j), loc, errors)
        if point is None:
            continue
        if train is not None and point.at is not None and point.at.epoch is not None and point.at.epoch > train.epochs:
            errors.append(f"{_where(raw, (*loc, j))}: {_dotted((*loc, j))}: {point.at} lies beyond the level's {train.epochs} epochs")
            continue
        points.append(point)
    return tuple(points)


def resolved_params(params: BaseModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's parameters with every value written out, and the part its run id hashes: those not at
    their default (so adding a knob whose default keeps the old behaviour keeps existing ids)."""
    return params.model_dump(mode="json"), params.model_dump(mode="json", exclude_defaults=True)


def _parse_from(value: Any, raw: MarkedDict, loc: tuple, errors: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    where = _where(raw, (*loc, "from"))
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        errors.append(f"{where}: {_dotted((*loc, 'from'))}: a mapping of role ({', '.join(PRODUCER_ROLES)}) -> method label")
        return {}
    for role in value:
        if role not in PRODUCER_ROLES:
            errors.append(f"{where}: {_dotted((*loc, 'from'))}: unknown role {role!r}{_suggest(str(role), PRODUCER_ROLES)} "
                          f"(roles: {', '.join(PRODUCER_ROLES)})")
    return {str(k): v for k, v in value.items()}


def _check_producers(methods: list[ResolvedMethod], raw: MarkedDict, errors: list[str]) -> None:
    """Producers exist, form no cycle, and a mask producer prunes on the consumer's schedule."""
    by_label = {m.label: m for m in methods}
    for i, m in enumerate(methods):
        where = _where(raw, ("methods", i, "from"))
        if "weights" not in m.producers and any(m.method.weights_read(m.method.Params.model_validate(p)) for _, p in m.variants):
            errors.append(f"{_where(raw, ('methods', i))}: methods[{i}] ({m.label}): loads another run's weights; "
                          "name that run: from: {weights: LABEL}")
        for role, label in m.producers.items():
            producer = by_label.get(label)
            if producer is None:
                errors.append(f"{where}: methods[{i}].from.{role}: no method entry labelled {label!r}"
                              f"{_suggest(label, list(by_label))}")
                continue
            if len(producer.variants) > 1 and any(v not in {pv for pv, _ in producer.variants} for v, _ in m.variants):
                errors.append(f"{where}: methods[{i}].from.{role}: {label!r} has several sweep points and not {m.label!r}'s")
            if producer.model != m.model:
                errors.append(f"{where}: methods[{i}].from.{role}: {label!r} trains another model than {m.label!r} "
                              "(their 'model:' differs); masks and signs pass only between runs of the same network")
            if role == "weights":
                errors += [f"{where}: methods[{i}].from.weights: {problem}" for problem in _weights_problems(producer, m)]
            if role != "masks":
                continue
            if any(params.get("mask_level") is not None for _, params in m.variants):
                errors += [f"{where}: methods[{i}].from.masks: {problem}" for problem in _mask_level_problems(producer, m)]
            else:
                theirs, ours = _schedule(producer), _schedule(m)
                if theirs != ours:
                    errors.append(f"{where}: methods[{i}].from.masks: {m.label!r} prunes to {ours} but {label!r} to {theirs}; "
                                  "a run can only take the masks of a run with the same density schedule")
            if m.prune.allocation != "global":
                errors.append(f"{where}: methods[{i}].from.masks: needs prune.allocation: global (the producer's "
                              "mask is taken whole, whatever its per-layer split)")
    ordered = _producers_first(methods) if not errors else methods
    if len(ordered) < len(methods):
        stuck = [m.label for m in methods if m not in ordered]
        errors.append(f"{_where(raw, ('methods',))}: methods: entries take masks/signs from each other in a cycle: {', '.join(stuck)}")


def _weights_problems(producer: ResolvedMethod, m: ResolvedMethod) -> list[str]:
    """Every point a run loads weights from is one its producer keeps."""
    problems = []
    for _, params in m.variants:
        for point in m.method.weights_read(m.method.Params.model_validate(params)):
            if not any(k.at == point.at and k.matches(point.level) for k in producer.keep_weights):
                keep = f"{{level: {point.level}" + ("}" if point.at is None else f", at: {point.at}}}")
                problems.append(f"{producer.label!r} keeps no weights at {point}: give its entry keep_weights: [{keep}]")
    return list(dict.fromkeys(problems))


def _mask_level_problems(producer: ResolvedMethod, m: ResolvedMethod) -> list[str]:
    """A run that trains the producer's level-k mask must prune to that level's density."""
    problems = []
    for variant, params in m.variants:
        _, theirs = next(((v, p) for v, p in producer.variants if v == variant), producer.variants[0])
        levels = [1.0, *producer.method.Params.model_validate(theirs).level_densities()]
        level, density = params["mask_level"], params.get("density", 1.0)
        if level >= len(levels):
            problems.append(f"{producer.label!r} has no level {level} (levels 0-{len(levels) - 1})")
        elif not math.isclose(levels[level], density, rel_tol=1e-6):
            problems.append(f"{m.label!r} prunes to density {density} but {producer.label!r}'s level {level} has {levels[level]:.7g}")
    return problems


def _schedule(m: ResolvedMethod) -> list[list[float]] | None:
    out = []
    for _, params in m.variants:
        densities = m.method.Params.model_validate(params)
        out.append([round(d, 12) for d in densities.level_densities()] if hasattr(densities, "level_densities") else None)
    return out



@functools.lru_cache(maxsize=4)
def _structure(model_json: str, classes: int, shape: tuple[int, int, int]) -> torch.nn.Module:
    """The suite's model, for its parameter names and shapes: built on the CPU (0.01 s for LeNet, 0.8 s for
    ResNet-50) and not on the meta device, whose initialisers import torch._dynamo (2 s) on the first call;
    under a forked RNG, so checking a suite draws nothing from the caller's generator."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        return build_model(ModelSpec.model_validate_json(model_json), classes, shape)


def _check_prunable(spec: SuiteSpec, methods: list[ResolvedMethod], raw: MarkedDict, errors: list[str]) -> None:
    """Every method's model builds (a builder refuses an option's value, e.g. ``width: 0``, here rather than in
    a run), and every pruning method's prunable selection matches weights of it."""
    if spec.data is None or spec.model is None:
        return
    failed: set[str] = set()  # a model that does not build is reported once, at the first entry that names it
    for i, m in enumerate(methods):
        if m.method.standalone:
            continue
        model_spec = m.model_of(spec)
        key = model_spec.model_dump_json()
        if key in failed:
            continue
        try:
            model = _structure(key, *expected_shape(spec.data))
        except (ValueError, TypeError) as e:
            failed.add(key)
            loc = ("methods", i, "model") if m.model is not None else ("model",)
            errors.append(f"{_where(raw, loc, ('model',))}: {_dotted(loc)}: {model_spec.name}: {e}")
            continue
        if not m.method.prunes:
            continue
        where = _where(raw, ("methods", i, "prune", "prunable"), ("prune", "prunable"))
        try:
            if not prunable_parameters(model, m.prune.prunable):
                errors.append(f"{where}: methods[{i}] ({m.label}): prune.prunable selects no weight of {model_spec.name}")
        except MaskError as e:
            errors.append(f"{where}: methods[{i}] ({m.label}): prune.prunable: {e}")


def _check_prune(prune: PruneSpec, raw: MarkedDict, loc: tuple, errors: list[str]) -> None:
    try:
        get_scorer(prune.scorer)
    except UnknownName as e:
        errors.append(f"{_where(raw, (*loc, 'prune', 'scorer'), ('prune', 'scorer'))}: prune.scorer: {e}")
    try:
        ALLOCATIONS.get(prune.allocation)
    except UnknownName as e:
        errors.append(f"{_where(raw, (*loc, 'prune', 'allocation'), ('prune', 'allocation'))}: prune.allocation: {e}")


def _validate_part(model: type[BaseModel], value: Any, raw: MarkedDict, loc: tuple, fallback: tuple, errors: list[str]):
    try:
        return model.model_validate(value)
    except ValidationError as e:
        for err in e.errors():
            errors.append(_describe(err, raw, model, prefix=loc, fallback=fallback))
        return None


# ------------------------------------------------------------------------------ error messages
def _describe(
    err: dict,
    raw: MarkedDict,
    root: type[BaseModel],
    *,
    prefix: tuple = (),
    fallback: tuple | None = None,
    extra_valid: Iterable[str] = (),
    what: str = "",
) -> str:
    loc = tuple(err["loc"])
    full = (*prefix, *loc)
    where = _where(raw, full, (*fallback, *loc) if fallback else None)
    path = _dotted(full)
    if err["type"] == "extra_forbidden":
        valid = [*(_fields_at(root, loc[:-1]) or []), *extra_valid]
        owner = f" for {what}" if what else ""
        return f"{where}: {path}: unknown key {loc[-1]!r}{owner}{_suggest(str(loc[-1]), valid)} (valid: {', '.join(valid)})"
    if err["type"] == "missing":
        return f"{where}: {path}: required key missing"
    got = err.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    return f"{where}: {path}: {err['msg']}{shown}"


def _where(raw: Any, loc: tuple, fallback: tuple | None = None) -> str:
    """The deepest recorded 'file:line' along ``loc`` (then along ``fallback``)."""
    best, node, matched = getattr(raw, "where", ""), raw, True
    for part in loc:
        if isinstance(node, dict) and part in node:
            best = getattr(node, "key_where", {}).get(part, best)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            items = getattr(node, "item_where", [])
            best = items[part] if part < len(items) else best
            node = node[part]
        else:
            matched = False
            break
    if not matched and fallback:
        return _where(raw, fallback) or best
    return best


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = closest(name, list(valid))
    return f"; did you mean {close!r}?" if close else ""


def _fields_at(model: Any, loc: tuple) -> list[str] | None:
    """Field names of the pydantic model reached by following ``loc`` from ``model``."""
    tp = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else Any
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """Optional[X] / X | None -> X (the first pydantic model of a union, if any)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else args[0]
    return tp
