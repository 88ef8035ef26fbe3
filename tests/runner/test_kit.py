"""The adapter kit (conformance.kit): the dialect's defaults filled in, formats kept, messages naming the fault."""

import json
import math

import ml_dtypes
import numpy as np
import pytest

import reference
from conformance.adapter import Capabilities
from conformance.checks import CheckSkip, check_invalid_hparams, invalid_settings
from conformance.kit import (
    Unsupported,
    check_arity,
    check_dialect,
    check_state,
    framework_kwargs,
    json_config,
    to_numpy,
)

# torch.optim.Adagrad's documented defaults, under torch's own keywords.
TORCH_ADAGRAD_DEFAULTS = {
    "lr": 0.01,
    "lr_decay": 0.0,
    "weight_decay": 0.0,
    "initial_accumulator_value": 0.0,
    "eps": 1e-10,
}


# ---------------------------------------------------------------------------------------------------------------
# framework_kwargs


def test_the_dialects_defaults_fill_what_the_case_leaves_unset():
    out = framework_kwargs("adagrad/torch", {"lr": 0.1})
    assert out == TORCH_ADAGRAD_DEFAULTS | {"lr": 0.1}
    dialect = reference.get("adagrad/torch")
    assert dialect.hparams(out) == dialect.hparams({"lr": 0.1})  # the same configuration, now spelled out


@pytest.mark.parametrize("dialect_id", reference.DIALECTS)
def test_every_dialect_is_configured_as_it_would_be_without_the_defaults_spelled_out(dialect_id):
    dialect = reference.get(dialect_id)
    given = {dialect.framework_name("lr"): 0.1}  # some dialects have no default learning rate
    out = framework_kwargs(dialect, given)
    assert dialect.hparams(out) == dialect.hparams(given)
    assert set(out) <= set(dialect.names)  # a default with no keyword (keras2's accumulator) is not passed


def test_a_value_the_case_sets_wins_over_the_default():
    out = framework_kwargs("adagrad/torch", {"eps": 1e-3, "maximize": True})
    assert out["eps"] == 1e-3
    assert out["maximize"] is True
    assert out["lr"] == 0.01


def test_a_dialect_object_and_its_id_give_the_same_keywords():
    hparams = {"lr": 0.5, "lr_decay": 0.1}
    assert framework_kwargs(reference.get("adagrad/torch"), hparams) == framework_kwargs("adagrad/torch", hparams)


def test_pairs_are_filled_as_pairs():
    out = framework_kwargs("rprop/torch", {"etas": [0.3, 1.5]})
    assert out == {"lr": 0.01, "etas": [0.3, 1.5], "step_sizes": [1e-6, 50.0]}  # torch.optim.Rprop's defaults


def test_an_alias_the_case_uses_is_kept_and_its_other_spelling_not_added():
    # tf.keras OptimizerV2 takes `lr` as an old spelling of `learning_rate`: passing both would be a conflict.
    out = framework_kwargs("adagrad/tf-keras-v2", {"lr": 0.5})
    assert out["lr"] == 0.5
    assert "learning_rate" not in out
    assert reference.get("adagrad/tf-keras-v2").hparams(out).lr == 0.5


def test_unknown_names_and_values_of_any_type_go_through_untouched():
    # Judging them is the framework's job: the invalid-hyperparameter check passes a removed keyword on purpose.
    out = framework_kwargs("adagrad/keras3", {"decay": 0.1, "learning_rate": "0.1", "epsilon": None})
    assert out["decay"] == 0.1
    assert out["learning_rate"] == "0.1"
    assert out["epsilon"] is None
    sentinel = object()
    assert framework_kwargs("adagrad/torch", {"lr": sentinel})["lr"] is sentinel


def test_the_case_mapping_is_not_changed():
    hparams = {"lr": 0.1}
    framework_kwargs("adagrad/torch", hparams, rename={"lr": "learning_rate"})
    assert hparams == {"lr": 0.1}


def test_lacks_drops_a_setting_left_at_the_default():
    assert "lr_decay" not in framework_kwargs("adagrad/torch", {"lr": 0.1}, lacks=("lr_decay",))
    # Given explicitly, but at the dialect's default: the framework behaves so without the keyword.
    assert "maximize" not in framework_kwargs("adagrad/torch", {"maximize": False}, lacks=("maximize",))
    assert "lr_decay" not in framework_kwargs("adagrad/torch", {"lr_decay": 0.0}, lacks=("lr_decay",))
    # A default that only the family gives (the dialect lists none for update_slots): still the default.
    assert "update_slots" not in framework_kwargs("adagrad/tf1", {"update_slots": True}, lacks=("update_slots",))


def test_lacks_makes_another_value_unsupported_naming_it():
    with pytest.raises(Unsupported, match=r"no 'maximize'; the case sets maximize=True"):
        framework_kwargs("adagrad/torch", {"maximize": True}, lacks=("maximize",))
    with pytest.raises(Unsupported, match=r"no 'lr_decay'; the case sets lr_decay=0\.1"):
        framework_kwargs("adagrad/torch", {"lr_decay": 0.1}, lacks=("lr_decay",))


def test_unsupported_skips_a_check_and_is_never_a_refusal():
    class LacksWeightDecay:
        name = "lacks-weight-decay"
        capabilities = Capabilities(dialects=("adagrad/torch",))

        def create(self, dialect, hparams, params):
            framework_kwargs(dialect, hparams, lacks=("weight_decay",))
            raise AssertionError("a setting it lacks must not reach the optimizer")

    dialect = reference.get("adagrad/torch")
    setting = next(s for s in invalid_settings(dialect) if "weight_decay" in s.invalid)
    with pytest.raises(CheckSkip, match="no 'weight_decay'"):
        check_invalid_hparams(LacksWeightDecay(), dialect, "float32", setting, "repro")


def test_rename_spells_the_frameworks_own_keywords():
    rename = {"lr": "learning_rate", "eps": "epsilon"}
    out = framework_kwargs("adagrad/torch", {"lr": 0.1, "eps": 1e-3}, rename=rename)
    assert out["learning_rate"] == 0.1
    assert out["epsilon"] == 1e-3
    assert "lr" not in out and "eps" not in out
    assert out["lr_decay"] == 0.0  # names not renamed stay as they are


def test_lacks_names_the_dialects_keyword_even_when_renamed():
    with pytest.raises(Unsupported, match="no 'eps'"):
        framework_kwargs("adagrad/torch", {"eps": 1e-3}, lacks=("eps",), rename={"eps": "epsilon"})
    assert "epsilon" not in framework_kwargs("adagrad/torch", {}, lacks=("eps",), rename={"eps": "epsilon"})


# ---------------------------------------------------------------------------------------------------------------
# to_numpy


def test_to_numpy_never_casts_a_changed_format_so_the_check_sees_it():
    held = np.array([1.0, 0.1], dtype=np.float32)
    out = to_numpy(held, "float64")
    assert out.dtype == np.float32 and out.tobytes() == held.tobytes()
    assert not np.shares_memory(out, held)
    assert to_numpy(np.ones(3), "float16").dtype == np.float64


def test_to_numpy_returns_a_copy_in_the_same_format():
    held = np.array([1.0, -0.0, np.nan], dtype=np.float32)
    out = to_numpy(held, "float32")
    assert out.dtype == np.float32
    assert out.tobytes() == held.tobytes()  # the sign of zero and the NaN's bits included
    held[0] = 2.0
    assert out[0] == 1.0  # the framework may later overwrite what it handed out


def test_to_numpy_accepts_a_carrier_holding_exact_values():
    values = np.array([1.0, 0.1, -3.5], dtype=ml_dtypes.bfloat16)
    out = to_numpy(values.astype(np.float32), "bfloat16", carried=True)
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)
    assert out.tobytes() == values.tobytes()


def test_to_numpy_refuses_a_carried_value_the_cast_back_would_change():
    with pytest.raises(ValueError, match="not exactly representable in bfloat16"):
        to_numpy(np.array([1.0, 0.1], dtype=np.float32), "bfloat16", carried=True)


# ---------------------------------------------------------------------------------------------------------------
# The checks every adapter repeats


def test_check_arity():
    check_arity([1, 2], 2, "gradient")
    with pytest.raises(ValueError, match=r"^3 gradient arrays for 2 parameter tensors$"):
        check_arity([1, 2, 3], 2, "gradient")


def test_check_state_names_the_missing_slot_and_what_it_got():
    state = {"sum": [np.zeros(2)]}
    check_state(["sum"], state, 1)
    with pytest.raises(ValueError, match=r"needs slots \['prev'\]; got \['sum'\]"):
        check_state(["sum", "prev"], state, 1)
    with pytest.raises(ValueError, match=r"slot 'sum': 1 arrays for 2 parameter tensors"):
        check_state(["sum"], state, 2)


def test_check_dialect():
    check_dialect("mine", "adagrad/torch", "adagrad/torch")
    with pytest.raises(ValueError, match="mine implements adagrad/torch, not rprop/torch"):
        check_dialect("mine", "adagrad/torch", "rprop/torch")


def test_json_config_turns_numpy_scalars_and_tuples_into_json_values():
    config = {"learning_rate": np.float32(0.1), "betas": (np.float64(0.5), 2), "nested": {"eps": np.float16(1e-3)}}
    out = json_config(config)
    assert type(out["learning_rate"]) is float
    assert out["learning_rate"] == float(np.float32(0.1))  # exactly the float32 value, not 0.1
    assert out["betas"] == [0.5, 2]
    assert out["nested"]["eps"] == float(np.float16(1e-3))
    assert json.loads(json.dumps(out)) == out


def test_json_config_keeps_non_finite_numbers():
    out = json_config({"clipnorm": np.float64(np.inf), "x": math.nan})
    assert out["clipnorm"] == math.inf
    assert math.isnan(out["x"])


def test_json_config_names_what_does_not_serialise():
    with pytest.raises(TypeError, match=r"not JSON-serialisable: .*ndarray"):
        json_config({"lr": np.array([0.1, 0.2])})


def test_fitted_gives_arrays_of_the_parameters_shapes_in_their_format() -> None:
    from conformance.kit import fitted

    got = fitted([[1.0, 2.0], 0.5], [(2,), ()], "float16", "slot 'sum'")
    assert [a.dtype.name for a in got] == ["float16", "float16"] and got[0].tolist() == [1.0, 2.0]
    for values, message in (
        ([[1.0, 2.0]], r"1 slot 'sum' arrays for 2 parameter tensors"),
        ([[1.0], 0.5], r"slot 'sum'\[0\]: shape \(1,\) does not match the parameter's \(2,\)"),
        ([[1.0, 0.1], 0.5], r"not exactly representable in float16"),
    ):
        with pytest.raises(ValueError, match=message):
            fitted(values, [(2,), ()], "float16", "slot 'sum'")
