# Two entry points: `make conformance` (the main job) and `make test` (the project's own tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OPTCONF := $(BIN)/optconf

.PHONY: conformance test lint docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[all,test]'
	touch $@

# Until the runner exists, the main job prints reference trajectories: what each dialect must produce.
conformance: $(VENV)/.installed
	$(OPTCONF) trace adagrad/keras2 --hparams '{"lr": 0.1, "decay": 0.5}' --params '[1.0, -0.5]' --grads '[[0.5, -1.0], [0.3, 1.0]]'
	$(OPTCONF) trace adagrad/tf-keras-v2 --hparams '{"learning_rate": 0.1, "epsilon": 0}' --params '[1.0, -0.5]' --grads '[[0.5, -1.0], [0.3, 1.0]]'
	$(OPTCONF) trace adagrad/keras3 --hparams '{"learning_rate": 0.1, "weight_decay": 0.01}' --params '[1.0, -0.5]' --grads '[[0.5, -1.0], [0.3, 1.0]]'
	$(OPTCONF) trace adagrad/torch --dtype float64 --hparams '{"lr": 0.1, "lr_decay": 0.5}' --params '[1.0, -0.5]' --grads '[[0.5, -1.0], [0.3, 1.0]]'
	$(OPTCONF) trace adagrad/optax --hparams '{"learning_rate": 0.1, "eps": 0}' --params '[1.0, -0.5]' --grads '[[0.0, -1.0], [0.3, 1.0]]'
	$(OPTCONF) trace adagrad/tf1 --hparams '{"learning_rate": 0.1}' --params '[1.0, -0.5]' --grads '[[0.5, -1.0], [0.3, 1.0]]'
	$(OPTCONF) trace adagrad/tf-raw-v2 --hparams '{"lr": 0.1, "update_slots": false}' --params '[1.0, -0.5]' --grads '[[0.5, -1.0], [0.3, 1.0]]'
	$(OPTCONF) trace rprop/rprop+ --params '[0.0]' --grads '[[1], [1], [1], [-1], [1], [0], [1], [-1], [-1], [1]]'
	$(OPTCONF) trace rprop/rprop- --params '[0.0]' --grads '[[1], [1], [1], [-1], [1], [0], [1], [-1], [-1], [1]]'
	$(OPTCONF) trace rprop/irprop+ --params '[0.0]' --grads '[[1], [1], [1], [-1], [1], [0], [1], [-1], [-1], [1]]' --losses '[10, 9, 8, 8.5, 7, 7, 6, 6.5, 5, 4.5]'
	$(OPTCONF) trace rprop/irprop- --params '[0.0]' --grads '[[1], [1], [1], [-1], [1], [0], [1], [-1], [-1], [1]]'
	$(OPTCONF) trace rprop/torch --hparams '{"lr": 60}' --params '[0.0]' --grads '[[1], [1], [-1]]'
	$(OPTCONF) trace rprop/keras-answer --params '[0.0]' --grads '[[1], [1], [1], [-1], [1], [0], [1], [-1], [-1], [1]]'

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(OPTCONF) docs --check

docs: $(VENV)/.installed
	$(OPTCONF) docs

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
