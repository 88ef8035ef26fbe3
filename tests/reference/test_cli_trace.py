"""`optconf trace`: JSON out, exact numbers, one-line errors."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conformance.cli import main
from reference import format_of, run


def trace(capsys, *args):
    code = main(["trace", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_trace_prints_every_step_exactly(capsys):
    code, out, _ = trace(
        capsys,
        "adagrad/torch",
        "--dtype",
        "float32",
        "--hparams",
        '{"lr": 0.1}',
        "--params",
        "[1.0, -0.5]",
        "--grads",
        "[[0.5, -1.0], [0.3, 1.0]]",
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["dialect"] == "adagrad/torch" and doc["dtype"] == "float32"
    expected = run("adagrad/torch", {"lr": 0.1}, "float32", [[1.0, -0.5]], [[[0.5, -1.0]], [[0.3, 1.0]]])
    assert len(doc["steps"]) == 2
    for got, want in zip(doc["steps"], expected, strict=False):
        # float() of each string is exactly the float32 value.
        np.testing.assert_array_equal(np.array([float(x) for x in got["params"]], np.float32), want.params[0])
        np.testing.assert_array_equal(
            np.array([float(x) for x in got["state"]["sum"]], np.float32), want.state["sum"][0]
        )
        assert got["state"]["step"] == str(want.count)


def test_trace_special_values_round_trip(capsys):
    code, out, _ = trace(
        capsys, "rprop/torch", "--dtype", "bfloat16", "--params", '["-0.0", "nan", 1e-40]', "--grads", '[["nan", 0, 1]]'
    )
    assert code == 0
    params = json.loads(out)["steps"][0]["params"]
    assert params[0] == "-0.0" and params[1] == "nan"
    fmt = format_of("bfloat16")
    assert float(params[2]) == float(np.asarray(float(params[2]), dtype=fmt.np_dtype))


def test_trace_with_losses(capsys):
    code, out, _ = trace(capsys, "rprop/irprop+", "--params", "[0]", "--grads", "[[1], [-1]]", "--losses", "[1, 2]")
    assert code == 0
    assert json.loads(out)["steps"][1]["params"] == ["0.0"]  # the loss rose: the first move is undone


def test_trace_takes_the_state_and_the_counter_as_inputs(capsys):
    """ONNX's H and T: the trace from a given accumulator and counter is `run`'s with the same inputs."""
    args = ["adagrad/onnx", "--hparams", '{"R": 0.5, "decay_factor": 0.1}', "--params", "[1.0, -1.0]"]
    code, out, _ = trace(capsys, *args, "--grads", "[[0.5, 0.25]]", "--state", '{"H": [1.0, 0.5]}', "--count", "5")
    assert code == 0
    (step,) = json.loads(out)["steps"]
    (want,) = run(
        "adagrad/onnx",
        {"R": 0.5, "decay_factor": 0.1},
        "float32",
        [[1.0, -1.0]],
        [[[0.5, 0.25]]],
        initial_state={"H": [[1.0, 0.5]]},
        initial_count=5,
    )
    assert [np.float32(float(x)) for x in step["params"]] == list(want.params[0])
    assert [np.float32(float(x)) for x in step["state"]["H"]] == list(want.state["H"][0])
    assert step["state"]["T"] == "6"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["adagrad/nope", "--params", "[1]", "--grads", "[[1]]"], "unknown dialect 'adagrad/nope'"),
        (["adagrad/torch", "--params", "[1", "--grads", "[[1]]"], "--params: not valid JSON"),
        (["adagrad/torch", "--params", "[1]", "--grads", "[]"], "--grads must be a non-empty JSON list"),
        (["adagrad/torch", "--params", "[1]", "--grads", '[["x"]]'], "--grads must hold numbers"),
        (
            ["adagrad/torch", "--params", "[1]", "--grads", "[[1]]", "--hparams", "[1]"],
            "--hparams must be a JSON object",
        ),
        (["rprop/irprop+", "--params", "[1]", "--grads", "[[1]]"], "needs one loss per step"),
        (["adagrad/torch", "--dtype", "int8", "--params", "[1]", "--grads", "[[1]]"], "dtype 'int8' is not supported"),
        (["adagrad/onnx", "--params", "[1]", "--grads", "[[1]]", "--state", "[1]"], "--state must be a JSON object"),
        (
            ["adagrad/onnx", "--hparams", '{"R": 1}', "--params", "[1]", "--grads", "[[1]]", "--state", '{"sum": [1]}'],
            "keeps no slot 'sum'",
        ),
        (
            [
                "adagrad/onnx",
                "--hparams",
                '{"R": 1}',
                "--params",
                "[1]",
                "--grads",
                "[[1]]",
                "--state",
                '{"H": [1, 2]}',
            ],
            "initial slot 'H'",
        ),
        (["adagrad/onnx", "--params", "[1]", "--grads", "[[1]]", "--state", '{"H": ["x"]}'], "--state must hold"),
        (["adagrad/onnx", "--params", "[1]", "--grads", "[[1]]", "--count", "-1"], "--count must be >= 0"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(capsys, args, message):
    code, out, err = trace(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_console_script():
    script = pathlib.Path(sys.executable).with_name("optconf")
    result = subprocess.run(
        [script, "trace", "rprop/irprop-", "--params", "[0]", "--grads", "[[1]]"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["steps"][0]["params"] == ["-0.10000000149011612"]  # float32(0.1)
