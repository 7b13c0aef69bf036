"""bf16 weights blocked for oneDNN give exactly F.linear's results, eagerly and compiled."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tines.runtime.models import onednn
from tines.runtime.models.linear import Linear

pytestmark = pytest.mark.skipif(not onednn.available(), reason="no oneDNN bf16 on this CPU")


@pytest.mark.parametrize("rows", [1, 7, 32, 100])
def test_packed_linear_equals_f_linear(rows):
    g = torch.Generator().manual_seed(rows)
    w = torch.randn(96, 64, generator=g).bfloat16()
    bias = torch.randn(96, generator=g).bfloat16()
    x = torch.randn(rows, 64, generator=g).bfloat16()
    layer = Linear(64, 96, True, "bf16")
    layer.load(w, bias)
    assert layer.weight is None and layer.handle is not None  # only the packed copy is kept
    assert torch.equal(layer(x), F.linear(x, w, bias))


def test_a_compiled_call_reads_each_layers_own_packed_weight():
    layers = []
    for seed in (1, 2):
        layer = Linear(64, 32, False, "bf16")
        layer.load(torch.randn(32, 64, generator=torch.Generator().manual_seed(seed)).bfloat16())
        layers.append(layer)
    x = torch.randn(5, 64).bfloat16()
    compiled = torch.compile(lambda layer, x: layer(x) * 2, dynamic=True)
    for layer in layers:
        assert torch.equal(compiled(layer, x), layer(x) * 2)


def test_a_packed_weight_lives_as_long_as_its_layer():
    layer = Linear(64, 32, False, "bf16")
    layer.load(torch.randn(32, 64).bfloat16())
    handle = int(layer.handle)
    assert handle in onednn._PACKED
    del layer
    gc.collect()
    assert handle not in onednn._PACKED


def test_an_eager_packed_matmul_does_not_import_dynamo():
    """Engines that never compile (`compile=False`, tensor-parallel ranks) stay without
    torch._dynamo, ~190 MiB resident (checked in a fresh interpreter)."""
    script = ("import sys, torch\n"
              "from tines.runtime.models.linear import Linear\n"
              "layer = Linear(64, 96, True, 'bf16')\n"
              "layer.load(torch.randn(96, 64).bfloat16(), torch.randn(96).bfloat16())\n"
              "layer(torch.randn(40, 64).bfloat16())\n"
              "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
