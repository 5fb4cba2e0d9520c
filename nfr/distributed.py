"""Runs sharded over processes: ``torchrun --nproc_per_node=K -m nfr <experiment> ...``.

torchrun starts K copies of the command and tells each its place through the environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). An experiment that
supports sharding (registered with ``sharded=True``, see :mod:`nfr.experiments`) gives each rank a contiguous run of whole batches of its images
(:func:`shard_batches`: the same batches, so the same arithmetic, as one process), computes the
per-image values of its share, and gathers them in rank order (:func:`gather`), which is the
single-process order; every rank then holds the full result, and only rank 0 writes files and
prints. With one process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) nothing here touches
``torch.distributed``.
"""
from __future__ import annotations

import os

from nfr.errors import NFRError

__all__ = ["world_size", "rank", "init", "shutdown", "shard_batches", "gather",
           "gather_columns"]



def world_size() -> int:
    """The number of processes of this run.

    Returns
    -------
    int
        ``WORLD_SIZE`` from the environment (set by torchrun), 1 when unset.

    Raises
    ------
    NFRError
        If ``WORLD_SIZE`` is not a positive integer.
    """
    v = os.environ.get("WORLD_SIZE", "1")
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise NFRError(f"WORLD_SIZE must be a positive integer, got {v!r}")
    return n


def rank() -> int:
    """This process's rank: 0 for a single process, else ``RANK`` (set by torchrun).

    Returns
    -------
    int
        The global rank, 0 .. :func:`world_size` - 1.
    """
    return int(os.environ.get("RANK", "0")) if world_size() > 1 else 0


def init(device: str = "cpu") -> bool:
    """Join the process group when ``WORLD_SIZE`` > 1 (gloo on the CPU, NCCL on CUDA).

    Parameters
    ----------
    device : str
        ``"cpu"`` or ``"cuda"``; with CUDA each process uses GPU ``LOCAL_RANK``.

    Returns
    -------
    bool
        True when this is a multi-process run (the group is initialised), False otherwise.
    """
    if world_size() == 1:
        return False
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        backend = "gloo"
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = "nccl"
        dist.init_process_group(backend=backend)
    return True


def shutdown() -> None:
    """Leave the process group (if one was joined)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_batches(n: int, batch_size: int, world: int | None = None,
                  me: int | None = None) -> list[slice]:
    """This rank's batches of ``n`` images: a contiguous run of whole batches.

    The batches are those of a single process (``slice(i, i + batch_size)``); rank r gets the
    r-th of ``world`` nearly equal contiguous runs of them (earlier ranks one more when they do
    not divide evenly), so concatenating the ranks' results in rank order gives the
    single-process order.

    Parameters
    ----------
    n : int
        Number of images.
    batch_size : int
        Images per batch.
    world, me : int, optional
        World size and rank (default: :func:`world_size` and :func:`rank`).

    Returns
    -------
    list of slice
        This rank's batches (empty when there are fewer batches than ranks).
    """
    world = world_size() if world is None else int(world)
    me = rank() if me is None else int(me)
    bs = max(1, int(batch_size))
    batches = [slice(i, min(n, i + bs)) for i in range(0, n, bs)]
    q, r = divmod(len(batches), world)
    start = me * q + min(me, r)
    return batches[start:start + q + (1 if me < r else 0)]


def gather(values: list) -> list:
    """Concatenate every rank's list of per-unit values, in rank order, on every rank.

    Parameters
    ----------
    values : list
        This rank's values (any picklable objects), in its units' order.

    Returns
    -------
    list
        All ranks' values (``values`` itself for a single process).
    """
    if world_size() == 1:
        return list(values)
    import torch.distributed as dist
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(values))
    return [v for p in parts for v in p]


def gather_columns(a):
    """Concatenate every rank's array ``[k, n_local]`` along its columns (the units), in rank order.

    Parameters
    ----------
    a : numpy.ndarray
        This rank's values, one column per unit.

    Returns
    -------
    numpy.ndarray
        ``[k, n]``, the columns of all ranks.
    """
    import numpy as np
    if world_size() == 1:
        return a
    cols = gather(list(np.asarray(a).T))
    return np.stack(cols, 1) if cols else np.zeros((np.asarray(a).shape[0], 0))
