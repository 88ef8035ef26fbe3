"""The wheel carries the corpus: install it into a fresh venv and self-check from outside the checkout."""

import os
import pathlib
import subprocess
import sys
import venv
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_wheel_installs_and_self_checks_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("optconf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "optconf_vectors/MANIFEST.json" in names and "optconf_vectors/schema.json" in names
    assert "optconf_vectors/rprop/irprop+.json" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pytest_pin = "pytest==" + __import__("pytest").__version__
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel), pytest_pin],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTCONF_", "PYTHON"))}
    result = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "--pyargs",
            "conformance",
            "--impl=reference",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "rprop/irprop+ or adagrad/optax-float16",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "optconf conformance matrix" in result.stdout
    assert "failed" not in result.stdout.splitlines()[-1]
    header = subprocess.run(
        [python, "-m", "pytest", "--pyargs", "conformance", "--impl=reference", "--co"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "corpus 2.0.0 sha256:" in header.stdout
