"""Processes for data-parallel training.

Processes: who this process is (torchrun, SLURM or a local spawn), its device, the process group, and
DistributedDataParallel. The :class:`~crmnet.data.loader.BatchLoader` shards the data itself (no
DistributedSampler).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from crmnet.errors import CrmnetError


@dataclass(frozen=True)
class Dist:
    """The place of this process among the data-parallel processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the main process."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are several processes."""
        return self.world_size > 1


def launcher_env() -> Dist | None:
    """The process layout set by torchrun (RANK/WORLD_SIZE) or SLURM (SLURM_PROCID/NTASKS), if any."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return Dist(int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"])), int(env["WORLD_SIZE"]))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        if "MASTER_ADDR" not in env:
            raise CrmnetError(
                "SLURM multi-task run without MASTER_ADDR: export MASTER_ADDR=$(scontrol show hostnames "
                "$SLURM_JOB_NODELIST | head -n1) and MASTER_PORT before srun"
            )
        env.setdefault("MASTER_PORT", "29500")
        return Dist(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", "0")), int(env["SLURM_NTASKS"]))
    return None


def is_main_process() -> bool:
    """True unless a launcher started this process with a rank other than 0."""
    env = launcher_env()
    return env is None or env.main


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a local process group's rendezvous.

    Returns
    -------
    int
        The port number (the OS picked it; another program could take it before it is used).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(worker: Callable, args: tuple, nprocs: int) -> None:
    """Run ``worker(rank, *args, port)`` in ``nprocs`` fresh local processes and wait for all of them."""
    import torch.multiprocessing as mp

    mp.start_processes(worker, args=(*args, free_port()), nprocs=nprocs, start_method="spawn", join=True)


def become_rank(rank: int, world_size: int, port: int, cpu: bool) -> Dist:
    """Set the environment of local process ``rank`` of a spawned group; on CPU, share the cores."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(world_size)})
    if cpu:
        import torch

        # Share the cores instead of each process taking all of them (as torchrun's OMP_NUM_THREADS=1).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    return Dist(rank, rank, world_size)


def select_device(accelerator: str, dist: Dist):
    """The torch device of this process for ``accelerator`` (auto, cpu, cuda); CUDA: local rank's GPU."""
    import torch

    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "cuda":
        if not torch.cuda.is_available():
            raise CrmnetError("accelerator 'cuda' requested but no CUDA device is available")
        torch.cuda.set_device(dist.local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextlib.contextmanager
def process_group(dist: Dist, device) -> Iterator[None]:
    """The default process group for the duration; nothing when alone.

    The backend is NCCL on CUDA and gloo on CPU, or ``$CRMNET_DDP_BACKEND`` when set (gloo lets several
    processes share one GPU, which NCCL refuses: ``benchmarks/gpu_check.py`` tries both).
    """
    if not dist.distributed:
        yield
        return
    import torch.distributed as tdist

    if not tdist.is_initialized():
        backend = os.environ.get("CRMNET_DDP_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
        tdist.init_process_group(backend, rank=dist.rank, world_size=dist.world_size)
    try:
        yield
    finally:
        tdist.destroy_process_group()


def wrap_ddp(module, dist: Dist, device):
    """``module`` in DistributedDataParallel when there are several processes, else itself."""
    if not dist.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def barrier(dist: Dist) -> None:
    """Wait until every process reaches this point; does nothing in a single process.

    Parameters
    ----------
    dist : Dist
        This process's place among the data-parallel processes.
    """
    if dist.distributed:
        import torch.distributed as tdist

        tdist.barrier()


def any_rank(flag: bool, dist: Dist, device) -> bool:
    """True on every process when ``flag`` is true on any (a collective: all processes must call it)."""
    if not dist.distributed:
        return flag
    import torch
    import torch.distributed as tdist

    t = torch.tensor([float(flag)], device=device)
    tdist.all_reduce(t)
    return bool(t.item())


def gather_objects(obj, dist: Dist) -> list:
    """Every process's ``obj``, in rank order (a collective)."""
    if not dist.distributed:
        return [obj]
    import torch.distributed as tdist

    every = [None] * dist.world_size
    tdist.all_gather_object(every, obj)
    return every


def broadcast_buffers(model, dist: Dist) -> None:
    """Rank 0's buffers everywhere: DDP keeps parameters equal, batch-norm statistics are per process."""
    if dist.distributed:
        import torch.distributed as tdist

        for buf in model.buffers():
            tdist.broadcast(buf, 0)
