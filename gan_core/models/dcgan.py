"""DCGAN: transposed-conv generator and strided-conv discriminator for square images whose side
is 4 * 2^k or 7 * 2^k style multiples of 4 (8, 16, 28, 32, 64, ...)."""
from __future__ import annotations

from torch import Tensor, nn

from .layers import Discriminator, Generator, MinibatchStdDev, dcgan_init, maybe_spectral, norm1d, norm2d


def _num_halvings(size: int) -> int:
    """Halve the side while it stays even and >= 4 after halving: 16 -> 2 (4x4), 28 -> 2 (7x7)."""
    n = 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        n += 1
    return n


class DCGANGenerator(Generator):
    """fc_width > 0: z goes through a hidden fully connected layer before the first feature map."""

    def __init__(self, z_dim: int, channels: int, size: int, width: int, norm: str,
                 fc_width: int = 0):
        super().__init__()
        self.z_dim = z_dim
        n = _num_halvings(size)
        self.base, self.c0 = size >> n, width * 2 ** (n - 1)
        # empty without fc_width, so the state dict keeps the keys of models saved before it
        self.hidden = nn.Sequential(*([nn.Linear(z_dim, fc_width, bias=norm != "batch"),
                                       norm1d(norm, fc_width), nn.ReLU()] if fc_width else []))
        self.fc = nn.Linear(fc_width or z_dim, self.c0 * self.base**2)
        layers: list[nn.Module] = [norm2d(norm, self.c0), nn.ReLU()]
        c = self.c0
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=norm != "batch"),
                       norm2d(norm, c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.fc(self.hidden(z)).view(z.shape[0], self.c0, self.base, self.base))


def pack_images(x: Tensor, pack: int) -> Tensor:
    """PacGAN: (N, C, H, W) -> (N/pack, pack*C, H, W); consecutive samples (0..pack-1), ... are
    concatenated along channels."""
    if x.shape[0] % pack:
        raise ValueError(f"a batch of {x.shape[0]} samples is not divisible by the PacGAN "
                         f"pack={pack}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


class DCGANDiscriminator(Discriminator):
    """pack > 1 (PacGAN): D judges `pack` samples jointly, N inputs give N/pack logits.
    fc_width > 0: a hidden fully connected layer between the last feature map and the logit.
    mbstd_group > 0: ProGAN's minibatch-stddev map joins the last feature map (groups of that
    many inputs), so D can tell a batch of too-alike fakes from reals."""

    def __init__(self, channels: int, size: int, width: int, norm: str, pack: int = 1,
                 fc_width: int = 0, mbstd_group: int = 0):
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        self.pack = pack
        n = _num_halvings(size)
        layers: list[nn.Module] = []
        c_in, c = channels * pack, width
        for i in range(n):
            layers += [maybe_spectral(nn.Conv2d(c_in, c, 4, 2, 1), norm)]
            if i > 0:  # no norm on the first layer, as in the paper
                layers.append(norm2d(norm, c))
            layers.append(nn.LeakyReLU(0.2))
            c_in, c = c, c * 2
        base = size >> n
        if mbstd_group:
            layers.append(MinibatchStdDev(mbstd_group))
            c_in += 1
        layers.append(nn.Flatten())
        features = c_in * base * base
        if fc_width:
            layers += [maybe_spectral(nn.Linear(features, fc_width), norm), norm1d(norm, fc_width),
                       nn.LeakyReLU(0.2)]
            features = fc_width
        layers.append(maybe_spectral(nn.Linear(features, 1), norm))
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def prepare(self, x: Tensor) -> Tensor:
        return pack_images(x, self.pack) if self.pack > 1 else x


def build(m, shape: tuple[int, ...], z_in: int, d_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return (DCGANGenerator(z_in, shape[0], shape[1], m.g_width, m.g_norm, m.fc_width),
            DCGANDiscriminator(d_shape[0], shape[1], m.d_width, m.d_norm, m.pack, m.fc_width,
                               m.mbstd_group if m.d_mbstd else 0))
