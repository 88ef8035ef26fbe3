"""Bad hyperparameters get a ValueError naming the parameter and the accepted range."""

import dataclasses

import pytest

import reference
from reference import get, run

REFUSED = [
    ("adagrad/torch", {"lr": -0.1}, r"invalid lr=-0\.1: must satisfy lr >= 0"),
    ("adagrad/torch", {"eps": -1e-8}, r"invalid eps=-1e-08: must satisfy eps >= 0"),
    ("adagrad/torch", {"initial_accumulator_value": -1.0}, r"invalid initial_accumulator=-1\.0"),
    ("adagrad/torch", {"lr_decay": -0.5}, r"invalid decay=-0\.5"),
    (
        "adagrad/tf1",
        {"learning_rate": 0.1, "initial_accumulator_value": 0.0},
        r"initial_accumulator=0\.0: must satisfy > 0",
    ),
    ("adagrad/keras3", {"clipnorm": 1.0, "clipvalue": 1.0}, r"at most one of .* may be set; got clipnorm, clipvalue"),
    ("adagrad/tf-keras-v2", {"clipnorm": 1.0, "global_clipnorm": 1.0}, r"at most one of clipnorm, global_clipnorm"),
    ("adagrad/tf-keras-v2", {"clipnorm": 0.0}, r"invalid clipnorm=0\.0: must satisfy > 0"),
    ("adagrad/optax", {}, r"adagrad/optax needs learning_rate"),
    ("adagrad/torch", {"learning_rate": 0.1}, r"adagrad/torch has no hyperparameter 'learning_rate'; accepted: "),
    ("rprop/torch", {"etas": (1.2, 0.5)}, r"invalid eta_minus=1\.2: must satisfy 0 < eta_minus < 1"),
    ("rprop/torch", {"etas": (0.5, 1.0)}, r"invalid eta_plus=1\.0: must satisfy eta_plus > 1"),
    ("rprop/torch", {"etas": (0.5,)}, r"invalid etas=\(0\.5,\): must be a pair"),
    (
        "rprop/irprop-",
        {"delta_min": 1.0, "delta_max": 0.5},
        r"invalid step_max=0\.5: must satisfy step_max >= step_min",
    ),
    ("rprop/keras-answer", {"init_alpha": -1.0}, r"invalid lr=-1\.0"),
]


@pytest.mark.parametrize(("dialect", "hparams", "message"), REFUSED, ids=[f"{d}-{m[:24]}" for d, _, m in REFUSED])
def test_refused(dialect, hparams, message):
    with pytest.raises(ValueError, match=message):
        get(dialect).hparams(hparams)


def test_irprop_plus_without_loss():
    with pytest.raises(ValueError, match="needs one loss per step"):
        run("rprop/irprop+", {}, "float32", [[1.0]], [[[1.0]]])


def test_unknown_dialect_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown dialect 'adagrad/pytorch'; known dialects: adagrad/keras2, "):
        get("adagrad/pytorch")


def test_unsupported_dtype():
    with pytest.raises(ValueError, match="adagrad/keras2 does not support float64"):
        run("adagrad/keras2", {}, "float64", [[1.0]], [[[1.0]]])
    with pytest.raises(ValueError, match="dtype 'int8' is not supported"):
        run("adagrad/torch", {}, "int8", [[1.0]], [[[1.0]]])


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match parameter shape \(2,\)"):
        run("adagrad/torch", {}, "float32", [[1.0, 2.0]], [[[1.0, 2.0, 3.0]]])


def test_silent_rewrite_is_modelled_not_refused():
    # tf.keras OptimizerV2 accepts epsilon=0 (and None) and uses 1e-7: the dialect says so instead of refusing.
    assert get("adagrad/tf-keras-v2").hparams({"epsilon": 0.0}).eps == 1e-7
    assert get("adagrad/tf-keras-v2").hparams({"epsilon": None}).eps == 1e-7
    assert get("adagrad/keras3").hparams({"epsilon": 0.0}).eps == 0.0


# Each dialect whose framework takes several keywords for one hyperparameter: the keywords given together, and the
# value its framework uses (tf_keras's legacy optimizers read `kwargs.get("lr", learning_rate)`).
ALIASES_TOGETHER = {"adagrad/tf-keras-v2": ({"lr": 1.0, "learning_rate": 0.1}, "lr", 1.0)}


def _aliased(dialect: reference.Dialect) -> list[list[str]]:
    by_target: dict[object, list[str]] = {}
    for name, target in dialect.names.items():
        by_target.setdefault(target, []).append(name)
    return [names for names in by_target.values() if len(names) > 1]


def test_every_dialect_with_aliases_says_how_they_resolve():
    assert sorted(d.id for d in reference.DIALECTS.values() if _aliased(d)) == sorted(ALIASES_TOGETHER)


@pytest.mark.parametrize("dialect_id", sorted(ALIASES_TOGETHER))
def test_aliases_given_together_resolve_as_the_framework_does(dialect_id):
    given, canonical, value = ALIASES_TOGETHER[dialect_id]
    dialect = get(dialect_id)
    for order in (given, dict(reversed(given.items()))):
        assert getattr(dialect.hparams(order), canonical) == value


def test_aliases_without_a_known_winner_are_refused():
    dialect = dataclasses.replace(get("adagrad/tf-keras-v2"), alias_winners=frozenset())
    with pytest.raises(ValueError, match=r"learning_rate and lr are aliases of one hyperparameter; give one"):
        dialect.hparams({"learning_rate": 0.1, "lr": 1.0})
    assert dialect.hparams({"lr": 1.0}).lr == 1.0
