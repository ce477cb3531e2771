"""Joining a multi-host JAX run, apart from any model: ``join_processes`` makes this process one of
several before any JAX computation, at ``--coordinator HOST:PORT`` when given, else by
``jax.distributed.initialize()`` with no arguments where a launcher JAX detects by itself started
several processes (``cluster_launcher``: SLURM's srun, Open MPI's mpirun, a Kubernetes Indexed
Job). ``diffc train`` calls it; docs/distributed.md shows the commands."""

from __future__ import annotations

from collections.abc import Mapping

import jax

# What jax.distributed.initialize() reads to join a cluster by itself (jax._src.clusters), by the
# launcher's name there, and the variable that says how many processes it started, where one does.
LAUNCHER_VARIABLES = {
    "slurm": ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"),
    "ompi": ("OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    "k8s": ("KUBERNETES_SERVICE_HOST", "JOB_COMPLETION_INDEX"),
}
PROCESS_COUNT_VARIABLE = {"slurm": "SLURM_NTASKS", "ompi": "OMPI_COMM_WORLD_SIZE"}


def cluster_launcher(environ: Mapping[str, str]) -> str | None:
    """The launcher that started this process as one of several, as ``environ`` shows it, or None
    for a lone process: SLURM (srun with several tasks; srun sets SLURM_STEP_NODELIST, which a
    batch script on its own lacks), Open MPI (mpirun with several ranks) or Kubernetes (a pod of an
    Indexed Job, whose parallelism JAX reads from the API). JAX joins these without arguments."""
    for name, variables in LAUNCHER_VARIABLES.items():
        if not all(variable in environ for variable in variables):
            continue
        count = PROCESS_COUNT_VARIABLE.get(name)
        if count is None or (environ[count].isdigit() and int(environ[count]) > 1):
            return name
    return None


def join_processes(coordinator: str | None, num_processes: int, process_id: int, environ: Mapping[str, str]) -> None:
    """Make this process one of a multi-host run before any JAX computation: at ``coordinator``
    when given, else as the launcher of ``environ`` says (``jax.distributed.initialize()``
    detects the coordinator, the number of processes and this one's index); alone otherwise."""
    if coordinator is not None:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    elif cluster_launcher(environ) is not None:
        jax.distributed.initialize()
