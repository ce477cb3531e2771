"""Training past one device: four (simulated CPU) devices give one device's losses and weights at the
same global batch, and ``diffc train`` joins a cluster by itself only where a launcher started
several processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import pytest
from PIL import Image

from diffc.cli.main import main
from diffc.models import configs, train
from diffc.runtime import distributed

DEVICES = 4
STEPS = 3  # the first has a learning rate of 0 (warm-up); the next two move the weights


def start_training(data: Path, out: Path, devices: int) -> subprocess.Popen:
    """This file as a script: ``STEPS`` steps of the tiny config on ``devices`` CPU devices."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    return subprocess.Popen([sys.executable, __file__, str(data), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def train_and_record(data: Path, out: Path) -> None:
    """In the subprocess: ``fit`` as ``diffc train`` runs it, each step's loss kept in OUT/losses.json."""
    losses: list[float] = []
    options = train.FitOptions(data=[data], out=out, config=configs.get_config("tiny"), steps=STEPS)
    card = train.fit(options, lambda entry: losses.append(entry["bpd"]))
    (out / "losses.json").write_text(json.dumps({"losses": losses, "device": card["device"]}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """The same training on 1 and on 4 devices, side by side in two processes."""
    root = tmp_path_factory.mktemp("multidevice")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        walk = np.cumsum(rng.normal(size=(24, 24, 3)) * 8, axis=1) + rng.uniform(60, 200, 3)
        Image.fromarray(np.clip(walk, 0, 255).astype(np.uint8)).save(data / f"{i}.png")
    outs = {devices: root / f"devices-{devices}" for devices in (1, DEVICES)}
    processes = {devices: start_training(data, out, devices) for devices, out in outs.items()}
    for devices, process in processes.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
    return outs


def record(out: Path) -> dict:
    return json.loads((out / "losses.json").read_text())


def weights(out: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weights and their EMA after the last step."""
    state = flax.serialization.msgpack_restore((out / "state.msgpack").read_bytes())
    return tuple([np.asarray(leaf) for leaf in jax.tree.leaves(state[key])] for key in ("params", "ema_params"))


def test_four_devices_train_as_one(runs):
    one, four = record(runs[1]), record(runs[DEVICES])
    assert one["device"].startswith("1 x cpu") and four["device"].startswith(f"{DEVICES} x cpu")
    assert len(one["losses"]) == STEPS and len(set(one["losses"])) == STEPS
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    params, ema = weights(runs[1])
    assert max(np.abs(p - e).max() for p, e in zip(params, ema)) > 1e-5  # the weights moved from where EMA lags
    for a, b in zip(sum(weights(runs[DEVICES]), []), params + ema, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # differences of 5e-8 seen; a step moves 1e-4


SLURM_STEP = {"SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_NTASKS": "8", "SLURM_PROCID": "3",
              "SLURM_LOCALID": "1"}
MPIRUN = {"OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.96.0.1:34911", "OMPI_COMM_WORLD_SIZE": "2",
          "OMPI_COMM_WORLD_RANK": "1"}
INDEXED_JOB = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "JOB_COMPLETION_INDEX": "0"}


@pytest.mark.parametrize(("environ", "launcher"), [
    (SLURM_STEP, "slurm"),
    ({**SLURM_STEP, "SLURM_NTASKS": "1"}, None),  # one task, e.g. one of a job array's
    ({k: v for k, v in SLURM_STEP.items() if k != "SLURM_STEP_NODELIST"}, None),  # the batch script, outside srun
    ({"SLURM_JOB_ID": "77", "SLURM_NTASKS": "8"}, None),
    (MPIRUN, "ompi"),
    ({**MPIRUN, "OMPI_COMM_WORLD_SIZE": "1"}, None),
    (INDEXED_JOB, "k8s"),
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, None),  # any pod, not one of an Indexed Job
    ({}, None),
])
def test_a_cluster_is_joined_where_a_launcher_started_several_processes(environ, launcher):
    assert distributed.cluster_launcher(environ) == launcher


@pytest.mark.parametrize(("flags", "environ", "call"), [
    ((None, 1, 0), SLURM_STEP, ()),
    ((None, 1, 0), {}, None),
    (("head:1234", 2, 1), SLURM_STEP, ("head:1234", 2, 1)),  # flags win over the environment
])
def test_join_processes_lets_jax_detect_the_cluster_without_flags(monkeypatch, flags, environ, call):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args: calls.append(args))
    distributed.join_processes(*flags, environ)
    assert calls == ([] if call is None else [call])


@pytest.mark.parametrize(("flags", "message"), [
    (["--num-processes", "2"], "needs --coordinator HOST:PORT too"),
    (["--process-id", "1"], "needs --coordinator HOST:PORT too"),
    (["--coordinator", "head:1234", "--num-processes", "2", "--process-id", "2"], "2 is not below --num-processes 2"),
])
def test_process_flags_that_describe_no_run_are_usage_errors(tmp_path, capsys, flags, message):
    args = ["train", "vdm", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--steps", "1", *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_processes_other_than_the_first_finish_quietly(tmp_path, capsys, monkeypatch):
    """Only process 0 saves, so the others have no model card to report (they crashed on it once)."""
    monkeypatch.setattr(train, "fit", lambda options, report: {})
    assert main(["train", "vdm", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--steps", "1"]) == 0
    assert "saved" not in capsys.readouterr().err


if __name__ == "__main__":
    train_and_record(Path(sys.argv[1]), Path(sys.argv[2]))
