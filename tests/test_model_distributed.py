"""Two gloo processes, synced batch statistics and gathered negatives: the mean of their gradients
is the gradient of one process on the concatenated batch, for both phases of the objective."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from model.config import LossConfig, ModelConfig
from model.discriminator import Discriminator
from model.generator import Generator
from model.objective import XMCGANLoss
from model.text_encoder import TextEmbedding
from model.vgg import VGG19Features

WORLD, PER_RANK = 2, 3
MODEL = ModelConfig(
    image_size=32,
    z_dim=8,
    text_dim=12,
    g_base=4,
    g_channels=(4, 2, 1),
    d_base=4,
    d_channels=(1, 2, 4, 4),
    region_size=8,
)
LOSS = LossConfig(vgg_layer="block1_pool", vgg_input_size=16)


def global_batch() -> dict:
    g = torch.Generator().manual_seed(1)
    n = WORLD * PER_RANK
    lengths = torch.tensor([[2], [6], [3], [5], [4], [6]])
    text = TextEmbedding(
        torch.randn(n, 6, 12, generator=g), torch.arange(6)[None] < lengths, torch.randn(n, 12, generator=g)
    )
    return dict(real=torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, text=text, z=torch.randn(n, 8, generator=g))


def phase_gradients(rows: slice, *, synced: bool) -> dict[str, torch.Tensor]:
    """Gradients of D from the discriminator phase and of G from the generator phase, in float64."""
    torch.manual_seed(0)
    model_config = MODEL.replace(sync_batch_stats=synced)
    generator, discriminator = Generator(model_config).double(), Discriminator(model_config).double()
    vgg = VGG19Features(layer=LOSS.vgg_layer, input_size=LOSS.vgg_input_size).double()
    loss = XMCGANLoss(
        generator=generator, discriminator=discriminator, vgg=vgg, config=LOSS.replace(gather_negatives=synced)
    )
    batch = global_batch()
    batch = dict(
        real=batch["real"][rows].double(),
        text=batch["text"][rows].to("cpu", torch.float64),
        z=batch["z"][rows].double(),
    )
    loss.discriminator_loss(**batch)[0].backward()
    loss.generator_loss(**batch)[0].backward()
    grads = {f"D.{name}": p.grad for name, p in discriminator.named_parameters()}
    return grads | {f"G.{name}": p.grad for name, p in generator.named_parameters()}


def _worker(rank: int, store: str, out: str, synced: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        grads = phase_gradients(slice(rank * PER_RANK, (rank + 1) * PER_RANK), synced=synced)
        for grad in grads.values():  # the training loop's step: all-reduce, divide by the world size
            dist.all_reduce(grad)
            grad /= WORLD
        if rank == 0:
            save_file({k: v.contiguous() for k, v in grads.items()}, out)
    finally:
        dist.destroy_process_group()


def distributed_gradients(tmp_path, *, synced: bool) -> dict[str, torch.Tensor]:
    # Rendezvous through a file, not a port: a free port picked here can be taken by any other process on
    # the machine before the store binds it (other tests, torchrun jobs), and the spawn then fails.
    out, store = str(tmp_path / f"grads-{synced}.safetensors"), str(tmp_path / f"store-{synced}")
    mp.spawn(_worker, args=(store, out, synced), nprocs=WORLD, join=True)
    return load_file(out)


@pytest.mark.slow
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    torch.set_num_threads(1)
    expected = phase_gradients(slice(None), synced=False)  # one process: no collectives at all
    got = distributed_gradients(tmp_path, synced=True)
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-9, atol=1e-12, msg=name)

    # Without the options the processes normalise and contrast locally: G's gradients differ.
    local = distributed_gradients(tmp_path, synced=False)
    assert not all(torch.allclose(local[name], expected[name], rtol=1e-6) for name in expected if name.startswith("G."))
