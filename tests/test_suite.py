"""Suite loading: line-marked errors with suggestions, extends, --set, reduced profiles, expansion."""

import textwrap
from pathlib import Path

import pytest

from prunebench.suite import SuiteError, load_suite

BASE = """\
name: t
data:
  dataset: synthetic
  synthetic: {channels: 1, size: 8, classes: 4, train_size: 64, test_size: 32}
model:
  name: lenet_300_100
train:
  epochs: 2
  batch_size: 16
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  schedule: {name: cosine}
prune:
  scorer: magnitude
methods:
  - name: dense
  - name: imp
    levels: 2
    rewind: 1ep
seeds: [0, 1]
reduced:
  train: {epochs: 1}
  seeds: [0]
  methods:
    imp: {levels: 1}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error(tmp_path, text, **kw) -> str:
    with pytest.raises(SuiteError) as e:
        load_suite(write(tmp_path, text), **kw)
    return str(e.value)


def test_valid_suite_expands_methods_times_seeds(tmp_path):
    suite = load_suite(write(tmp_path, BASE))
    runs = suite.runs()
    assert [(r.label, r.seed) for r in runs] == [("dense", 0), ("dense", 1), ("imp", 0), ("imp", 1)]
    assert runs[2].params["rewind"] == {"epoch": 1.0, "step": None}
    assert runs[2].params["levels"] == 2 and runs[2].params["fraction"] == 0.2  # defaults written out
    assert len({r.run_id for r in runs}) == 4


def test_unknown_key_names_file_line_path_and_suggestion(tmp_path):
    msg = error(tmp_path, BASE.replace("  batch_size: 16", "  batch_sise: 16"))
    assert "s.yaml:9: train.batch_sise: unknown key 'batch_sise'; did you mean 'batch_size'?" in msg
    assert "train.batch_size: required key missing" in msg


def test_unknown_method_param_suggests(tmp_path):
    msg = error(tmp_path, BASE.replace("    levels: 2", "    levles: 2"))
    assert "s.yaml:17: methods[1].levles: unknown key 'levles' for method 'imp'; did you mean 'levels'?" in msg


def test_wrong_type_names_line_and_value(tmp_path):
    msg = error(tmp_path, BASE.replace("  epochs: 2", "  epochs: two"))
    assert "s.yaml:8: train.epochs: Input should be a valid integer" in msg and "'two'" in msg


def test_unknown_method_lists_known(tmp_path):
    msg = error(tmp_path, BASE.replace("  - name: dense", "  - name: lr"))
    assert "s.yaml:15: methods[0].name: unknown method 'lr'; known:" in msg and "Did you mean 'lrr'?" in msg


def test_unknown_scorer_dataset_and_model(tmp_path):
    text = BASE.replace("scorer: magnitude", "scorer: magnitud").replace("dataset: synthetic", "dataset: cifar11")
    msg = error(tmp_path, text.replace("name: lenet_300_100", "name: resnet19"))
    assert "s.yaml:3: data.dataset: unknown dataset 'cifar11'; known:" in msg and "Did you mean 'cifar10'?" in msg
    assert "s.yaml:6: model: unknown model 'resnet19'; known:" in msg and "Did you mean 'resnet18'?" in msg
    assert "s.yaml:13: prune.scorer: unknown scorer 'magnitud'; known:" in msg and "Did you mean 'magnitude'?" in msg


def test_bad_yaml_names_line(tmp_path):
    msg = error(tmp_path, BASE.replace("  batch_size: 16", "  batch_size: [16"))
    assert msg.startswith(f"{tmp_path / 's.yaml'}:10:") and "invalid YAML" in msg


def test_duplicate_key_rejected(tmp_path):
    msg = error(tmp_path, BASE.replace("  batch_size: 16", "  batch_size: 16\n  epochs: 3"))
    assert "s.yaml:10: duplicate key 'epochs' (first written at" in msg and "s.yaml:8)" in msg


def test_yaml_tags_are_not_executed(tmp_path):
    msg = error(tmp_path, BASE.replace("name: t", "name: !!python/object/apply:os.system ['true']"))
    assert "invalid YAML" in msg


def test_extends_merges_and_errors_name_the_writing_file(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\ntrain:\n  epochs: 5\n", "child.yaml")
    suite = load_suite(child)
    assert suite.name == "child" and suite.spec.train.epochs == 5 and suite.spec.train.batch_size == 16
    write(tmp_path, BASE.replace("momentum: 0.9", "momentum: 0.9, nesterof: true"), "base.yaml")
    with pytest.raises(SuiteError, match=r"base\.yaml:10: train\.optimizer\.nesterof: unknown key.*'nesterov'"):
        load_suite(child)


def test_extends_cycle(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(SuiteError, match="extends cycle"):
        load_suite(tmp_path / "a.yaml")


def test_set_overrides_with_yaml_values_and_method_labels(tmp_path):
    path = write(tmp_path, BASE)
    suite = load_suite(path, overrides=["train.epochs=4", "seeds=[3]", "methods.imp.levels=3", "train.optimizer.lr=0.05"])
    assert suite.spec.train.epochs == 4 and suite.spec.seeds == [3]
    assert suite.spec.train.optimizer.lr == 0.05
    assert suite.runs()[1].params["levels"] == 3
    with pytest.raises(SuiteError, match=r"--set train\.epocs=4: train\.epocs: unknown key.*'epochs'"):
        load_suite(path, overrides=["train.epocs=4"])
    with pytest.raises(SuiteError, match="no method entry labelled 'lrr'"):
        load_suite(path, overrides=["methods.lrr.levels=3"])


def test_reduced_profile(tmp_path):
    suite = load_suite(write(tmp_path, BASE), reduced=True)
    assert suite.spec.train.epochs == 1 and suite.spec.seeds == [0]
    assert [r.params.get("levels") for r in suite.runs()] == [None, 1]
    assert suite.spec.reduced_applied
    with pytest.raises(SuiteError, match="no 'reduced:' block"):
        load_suite(write(tmp_path, BASE.split("reduced:")[0], "plain.yaml"), reduced=True)


def test_method_overrides_and_sweeps(tmp_path):
    text = BASE.replace("  - name: dense\n", "  - name: dense\n    train: {epochs: 7}\n"
                                               "  - name: oneshot_magnitude\n    sweep: {density: [0.5, 0.1]}\n")
    runs = load_suite(write(tmp_path, text)).runs()
    assert runs[0].train.epochs == 7 and runs[4].train.epochs == 2
    sweep = [r for r in runs if r.method == "oneshot_magnitude"]
    assert [(r.label, r.variant, r.params["density"], r.seed) for r in sweep] == [
        ("oneshot_magnitude", "density=0.5", 0.5, 0), ("oneshot_magnitude", "density=0.5", 0.5, 1),
        ("oneshot_magnitude", "density=0.1", 0.1, 0), ("oneshot_magnitude", "density=0.1", 0.1, 1)]


def test_duplicate_labels_rejected(tmp_path):
    msg = error(tmp_path, BASE.replace("  - name: dense", "  - name: imp\n    label: imp"))
    assert "label 'imp' used twice" in msg


def test_run_id_changes_with_protocol_not_with_label(tmp_path):
    base = load_suite(write(tmp_path, BASE)).runs()[2]
    assert load_suite(write(tmp_path, BASE.replace("name: t", "name: u"), "u.yaml")).runs()[2].run_id == base.run_id
    relabel = BASE.replace("  - name: imp\n", "  - name: imp\n    label: my_imp\n")
    assert load_suite(write(tmp_path, relabel, "r.yaml")).runs()[2].run_id == base.run_id
    changed = load_suite(write(tmp_path, BASE.replace("lr: 0.1", "lr: 0.2"), "c.yaml")).runs()[2]
    assert changed.run_id != base.run_id


SHIPPED = sorted(p for p in (Path(__file__).parent.parent / "suites").rglob("*.yaml") if "golden" not in p.parts)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_suites_validate(path):
    suite = load_suite(path)
    assert suite.runs()
    if suite.spec.reduced:
        assert load_suite(path, reduced=True).runs()  # also validates its golden file, if any


def test_every_problem_reported_in_one_pass(tmp_path):
    text = BASE.replace("  epochs: 2", "  epochs: two").replace("    levels: 2", "    levles: 2").replace("- name: dense", "- name: lr")
    lines = error(tmp_path, text).splitlines()
    assert len(lines) == 3
    assert any("train.epochs" in x for x in lines) and any("levles" in x for x in lines) and any("'lr'" in x for x in lines)


def test_prunable_pattern_typo_caught_before_running(tmp_path):
    text = BASE.replace("  scorer: magnitude", "  scorer: magnitude\n  prunable: {exclude: [\"classifier.*\"]}")
    msg = error(tmp_path, text)
    assert "methods[1] (imp): prune.prunable: prunable pattern 'classifier.*' matches no" in msg and "s.yaml:14" in msg
    text = BASE.replace("  scorer: magnitude", "  scorer: magnitude\n  prunable: {types: [conv]}")
    assert "the model has no conv layer with a weight" in error(tmp_path, text)  # an MLP has no conv


@pytest.mark.parametrize("name,prunable", [
    ("cifar10_resnet18", 11_164_352),  # shared/references README: every conv and the classifier
    ("cifar100_resnet50", 23_652_032),
    ("tinyimagenet_resnet50", 23_864_512),
    # Renda: the 3x3 convs only: stem 3*16*9 + stage 1 6*16*16*9 + stage 2 (16*32 + 5*32*32)*9 + stage 3 (32*64 + 5*64*64)*9
    ("renda_resnet20_cifar10", 432 + 13_824 + 50_688 + 202_752),
    ("sculpt_resnet20_cifar10", 270_896),  # every conv (1x1 projections included) and the classifier
    ("sculpt_resnet50_cifar100", 23_652_032),
])
def test_suite_prunable_counts(name, prunable):
    """The prunable weight counts the papers state follow from each suite's model and selection."""
    import torch

    from prunebench.data import expected_shape
    from prunebench.masks import prunable_parameters
    from prunebench.models import build_model

    suite = load_suite(Path(__file__).parent.parent / "suites" / f"{name}.yaml")
    classes, shape = expected_shape(suite.spec.data)
    with torch.device("meta"):
        model = build_model(suite.spec.model, classes, shape)
    counts = {sum(p.numel() for p in prunable_parameters(model, m.prune.prunable).values()) for m in suite.methods if m.method.prunes}
    assert counts == {prunable}


def test_a_method_parameter_at_its_default_is_not_part_of_the_run_id(monkeypatch):
    from prunebench.methods.lrr import LRR
    from tests.conftest import tiny_spec

    implicit = tiny_spec(method="lrr", params={})
    explicit = tiny_spec(method="lrr", params={"levels": 5, "fraction": 0.2, "flip_at": None})
    assert implicit.run_id == explicit.run_id != tiny_spec(method="lrr", params={"levels": 4}).run_id

    class Later(LRR.Params):  # a knob added later, whose default keeps the old behaviour
        new_knob: bool = False

    monkeypatch.setattr(LRR, "Params", Later)
    assert tiny_spec(method="lrr", params={"new_knob": False}).run_id == implicit.run_id
    assert tiny_spec(method="lrr", params={"new_knob": True}).run_id != implicit.run_id


SWEPT = """\
name: s
data:
  dataset: synthetic
  synthetic: {channels: 1, size: 8, classes: 4, train_size: 128, test_size: 64}
model: {name: lenet_300_100, options: {hidden: [16]}}
train:
  epochs: 2
  batch_size: 32
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  schedule: {name: cosine, unit: step}
methods:
  - name: dense
  - {name: pai, label: snip, sweep: {density: [0.1, 0.5]}}
seeds: [0]
"""


@pytest.mark.parametrize("reduced, line, message", [
    ("{methods: {snip: {sweep: {densty: [0.5]}}}}", 15,
     "methods[1].sweep.densty: unknown key 'densty' for method 'pai'; did you mean 'density'?"),
    ("{methods: {snip: {sweep: {density: [abc]}}}}", 15, "methods[1].sweep.density: Input should be a valid number"),
    ("{methods: {snip: {rounds: abc}}}", 15, "methods[1].rounds: Input should be a valid integer"),
])
def test_errors_in_a_reduced_blocks_method_overrides_name_their_line(tmp_path, reduced, line, message):
    path = write(tmp_path, SWEPT + f"reduced: {reduced}\n")
    with pytest.raises(SuiteError) as caught:
        load_suite(path, reduced=True)
    assert f"{path}:{line}: {message}" in str(caught.value)


def test_misspelt_name_and_extends_get_a_suggestion(tmp_path):
    path = write(tmp_path, SWEPT.replace("  - name: dense", "  - nmae: dense"))
    with pytest.raises(SuiteError, match=r"s.yaml:12: methods\[0\]: a method entry is a mapping with at least 'name:'; "
                                         r"found 'nmae': did you mean 'name'\?"):
        load_suite(path)
    path = write(tmp_path, SWEPT + "extnds: base.yaml\n")
    with pytest.raises(SuiteError, match=r"s.yaml:15: extnds: unknown key 'extnds'; did you mean 'extends'\?"):
        load_suite(path)


# ---- per-entry models
def test_an_entry_model_merges_over_the_suites_and_keeps_the_others_ids(tmp_path):
    plain = load_suite(write(tmp_path, BASE)).runs()
    wide = BASE.replace("  - name: imp\n", "  - name: imp\n    model: {options: {hidden: [64, 32]}}\n")
    runs = load_suite(write(tmp_path, wide)).runs()
    assert runs[2].model.name == "lenet_300_100" and runs[2].model.options == {"hidden": [64, 32]}
    assert runs[0].model == plain[0].model and runs[0].run_id == plain[0].run_id  # dense: the suite's model, same id
    assert runs[2].run_id != plain[2].run_id


def test_entry_model_errors_name_the_entry(tmp_path):
    msg = error(tmp_path, BASE.replace("  - name: imp\n", "  - name: imp\n    model: {name: resnet19}\n"))
    assert "methods[1].model: unknown model 'resnet19'" in msg and "resnet18" in msg
    msg = error(tmp_path, BASE.replace("  - name: imp\n", "  - name: imp\n    model: {nmae: lenet5}\n"))
    assert "methods[1].model.nmae: unknown key" in msg and "'name'" in msg


def test_masks_pass_only_between_entries_of_one_model(tmp_path):
    text = BASE.replace("    rewind: 1ep\n", "    rewind: 1ep\n  - {name: lrr, levels: 2, prune: {scorer: mask_of}, from: {masks: imp}, "
                        "model: {options: {hidden: [64, 32]}}}\n")
    assert "trains another model than 'lrr'" in error(tmp_path, text)


# ---- kept weights and the runs that load them
KEEPING = BASE.replace("    rewind: 1ep\n", "    rewind: 1ep\n    keep_weights: [{level: 0, at: 1ep}, {level: every}]\n"
                       "  - {name: cyclic, label: warm, cycles: 1, density: 0.8, mask_level: 1, prune: {scorer: mask_of}, "
                       "weights_from: {level: 0, at: 1ep}, from: {masks: imp, weights: imp}}\n")


def test_keep_weights_reaches_the_producers_runs_and_the_consumer_names_them(tmp_path):
    runs = {(r.label, r.seed): r for r in load_suite(write(tmp_path, KEEPING)).runs()}
    imp, warm = runs[("imp", 0)], runs[("warm", 0)]
    assert [str(p) for p in imp.keep_weights] == ["level 0 at 1ep", "level every at its end"]
    assert warm.producers == {"masks": imp.run_id, "weights": imp.run_id} and warm.keep_weights == ()
    assert runs[("dense", 0)].keep_weights == ()


@pytest.mark.parametrize("change,expected", [
    ("keep_weights: [{level: 0, at: 1ep}, {level: every}]", "s.yaml:19: methods[1].keep_weights: a list of points"),
    ("{level: 0, at: 1ep}", "s.yaml:20: methods[2].from.weights: 'imp' keeps no weights at level 0 at 1ep: give its entry "
                            "keep_weights: [{level: 0, at: 1ep}]"),
    ("{level: 0, at: 3ep}", "methods[1].keep_weights[0]: 3ep lies beyond the level's 2 epochs"),
    ("{levle: 0}", "methods[1].keep_weights[0].levle: unknown key"),
])
def test_keep_weights_errors(tmp_path, change, expected):
    if change.startswith("keep_weights"):
        text = KEEPING.replace("keep_weights: [{level: 0, at: 1ep}, {level: every}]", "keep_weights: 5")
    elif change == "{level: 0, at: 1ep}":
        text = KEEPING.replace("keep_weights: [{level: 0, at: 1ep}, {level: every}]", "keep_weights: [{level: every, at: 0ep}]")
    else:
        text = KEEPING.replace("{level: 0, at: 1ep}, {level: every}", change)
    assert expected in error(tmp_path, text)


def test_a_run_that_loads_weights_must_name_their_producer(tmp_path):
    msg = error(tmp_path, KEEPING.replace("from: {masks: imp, weights: imp}", "from: {masks: imp}"))
    assert "methods[2] (warm): loads another run's weights; name that run: from: {weights: LABEL}" in msg
