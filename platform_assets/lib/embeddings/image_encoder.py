"""The image encoder: a ResNet-style CNN trained on the lake's own images with a SimCLR
objective (two augmented views of each image must embed close together), so no labels and
no downloaded weights are needed. Training is seeded and runs on a fixed thread count
(`device.reproducible`), so on CPU the weights — and their hash, the encoder version — are
the same bits on any core count, and so are the embeddings of its forward pass."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from platform_assets.lib.images.augment import augment
from platform_assets.lib.images.decode import as_float
from platform_assets.lib.torch_device import reproducible


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block, with its parameter names."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


ARCHITECTURES = {
    # name: (stem width, blocks per stage); "resnet18" has torchvision's resnet18 layout and
    # parameter names, so its ImageNet weights load (the classifier `fc.*` is dropped)
    "resnet18": (64, (2, 2, 2, 2)),
    "resnet-small": (32, (1, 1, 1, 1)),
}


class ImageEncoder(nn.Module):
    """A ResNet (torchvision's layout: conv1, bn1, layer1..4) pooled to a vector."""

    def __init__(self, arch: str = "resnet-small") -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown image encoder architecture {arch!r}: use one of {sorted(ARCHITECTURES)}")
        width, blocks = ARCHITECTURES[arch]
        self.conv1 = nn.Conv2d(3, width, 7 if arch == "resnet18" else 3, 2, 3 if arch == "resnet18" else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            layer = [BasicBlock(cin if j == 0 else cout, cout, 1 if i == 0 or j > 0 else 2) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            cin = cout
        self.dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with reproducible():  # with few images per batch, the bits depend on the thread count
            x = F.relu(self.bn1(self.conv1(x)))
            for i in range(1, 5):
                x = getattr(self, f"layer{i}")(x)
            return x.mean(dim=(2, 3))


def load_weights(path: str) -> tuple[str, dict]:
    """(architecture, state_dict) from a local weights file: ours, or torchvision's resnet18 (e.g. ImageNet)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    for arch in ARCHITECTURES:
        model = ImageEncoder(arch)
        if set(model.state_dict()) == set(state):
            return arch, state
    raise ValueError(f"{path}: not the weights of a known image encoder ({sorted(ARCHITECTURES)})")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner out of the 2N-1 other views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


@dataclass(frozen=True)
class TrainResult:
    state_dict: dict
    losses: list[float]
    version: str


def weights_version(state_dict: dict) -> str:
    """The sha256 of the serialized weights: the encoder version every embedding is keyed on."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()[:16]


def train_simclr(
    images: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    arch: str = "resnet-small",
) -> TrainResult:
    """Train on (N, 3, H, W) uint8 images; deterministic for a seed on CPU, on any core count."""
    with reproducible(algorithms=True):  # gradients are sums split by thread count
        return _train(images, epochs, batch_size, lr, seed, device, arch)


def _train(
    images: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int, device: torch.device, arch: str
) -> TrainResult:
    torch.manual_seed(seed)
    model = ImageEncoder(arch).to(device)
    head = nn.Sequential(nn.Linear(model.dim, model.dim), nn.ReLU(), nn.Linear(model.dim, 64)).to(device)
    opt = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=lr, weight_decay=1e-4)
    order_gen = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=order_gen)
        for start in range(0, len(images) - 1, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue
            batch = images[idx].to(device)
            views = [as_float(augment(batch, _params(seed, epoch, start, view, len(idx)))) for view in (0, 1)]
            loss = nt_xent(head(model(views[0])), head(model(views[1])))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return TrainResult(state, losses, weights_version(state))


def _params(seed: int, epoch: int, step: int, view: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(hash((seed, epoch, step, view)) & 0x7FFF_FFFF)
    return torch.rand(n, 7, generator=g)


def load_encoder(state_dict: dict, device: torch.device, arch: str = "resnet-small") -> ImageEncoder:
    model = ImageEncoder(arch)
    model.load_state_dict(state_dict)
    return model.to(device).eval()
