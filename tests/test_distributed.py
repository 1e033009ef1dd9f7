"""ganprior.distributed: torchrun's environment and the gradient average over processes."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ganprior.distributed import average_gradients, rank_and_world


@pytest.mark.parametrize("env, want", [({}, (0, 1)), ({"RANK": "1", "WORLD_SIZE": "3"}, (1, 3))])
def test_rank_and_world(monkeypatch, env, want):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert rank_and_world() == want


@pytest.mark.parametrize("env", [{"RANK": "x"}, {"RANK": "2", "WORLD_SIZE": "2"},
                                 {"WORLD_SIZE": "0"}])
def test_rank_and_world_refuses_impossible_values(monkeypatch, env):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError):
        rank_and_world()


def _average_on(rank, world, port, out):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        a = torch.nn.Parameter(torch.zeros(2, 3))
        b = torch.nn.Parameter(torch.zeros(4))
        none = torch.nn.Parameter(torch.zeros(1))  # no gradient: left out, still None
        a.grad = torch.full((2, 3), float(rank + 1))
        b.grad = torch.arange(4.0) * (rank + 1)
        average_gradients([a, none, b], world)
        out[rank] = (a.grad.clone(), b.grad.clone(), none.grad is None)
    finally:
        dist.destroy_process_group()


def test_average_gradients_is_the_mean_over_processes():
    # ranks hold gradients 1x and 2x: each must end with 1.5x (a sum would give 3x; Adam's
    # scale invariance hides that from the training tests, so it is pinned here)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.start_processes(_average_on, args=(2, port, out), nprocs=2, start_method="fork")
    for rank in (0, 1):
        a, b, untouched = out[rank]
        assert torch.equal(a, torch.full((2, 3), 1.5))
        assert torch.equal(b, torch.arange(4.0) * 1.5)
        assert untouched


def test_average_gradients_alone_changes_nothing():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    average_gradients([p], 1)
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0, 3.0]))
