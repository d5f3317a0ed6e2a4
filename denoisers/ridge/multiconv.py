"""The linear part ``W`` of a ridge regulariser: a multi-convolution with a certified norm.

``W`` is parametrised as a stack of convolutions ``w_1 (c_0 = 1 -> c_1), ..., w_L (c_{L-1} -> c_L)``
of size ``k x k`` each, without bias or nonlinearity, so the stack *is* one convolution with the
composed kernel ``K = w_L * ... * w_1`` of size ``k_L = L (k - 1) + 1`` (``1 -> 4 -> 8 -> 60`` with
``5 x 5`` filters: ``60`` filters of ``13 x 13``). The stack is only a parametrisation (it trains
better than the free ``13 x 13`` bank); evaluation uses the composed kernel.

* **Zero mean.** The first layer's filters are projected to zero mean in the forward pass
  (``w_1 - mean(w_1)``), so every composed filter has ``K_hat_c(0) = 0``: constant images are in
  the kernel of ``W`` and ``R`` does not see the mean intensity.
* **Valid convolution.** ``(W x)_c = K_c (x)`` cross-correlated over the *valid* windows only
  (no padding, output ``(H - k_L + 1) x (W - k_L + 1)``): no artificial edge at the border enters
  the regulariser. ``W = C K_circ E`` with ``E`` a zero extension and ``C`` a crop (both of norm 1),
  so ``||W|| <= sup_w ||K_hat(w)||_2`` for every image size. ``W^T`` is the transposed convolution.
* **Normalisation.** The operator evaluated is ``K / B(K)`` with ``B(K)`` the certified upper bound
  of ``sup_w ||K_hat(w)||_2`` of :func:`denoisers.layers.conv_bounds.conv_opnorm_upper_bound`
  (the maximum over a ``grid x grid`` DFT grid divided by the Bernstein sampling factor),
  computed differentiably in the parameters. Hence ``||W|| <= 1`` by construction for every
  value of the parameters; the certificate recomputes the bound of the normalised kernel in
  float64 and reports it (it is ``<= 1`` up to float32 rounding of the stored kernel).
  With ``grid = 256`` and a ``13 x 13`` kernel the factor is ``0.989``: at most 1.1% of the norm is
  given away.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from denoisers.layers.conv_bounds import sampling_factor

from denoisers.layers.conv_bounds import compose_kernels

__all__ = ["MultiConv", "compose_kernels"]


class MultiConv(nn.Module):
    """``W``: zero-mean, norm-normalised multi-convolution (see the module docstring).

    Parameters
    ----------
    channels: ``(1, c_1, ..., c_L)``; the first must be 1 (images are filtered per channel).
    kernel_size: odd size ``k`` of every layer.
    grid: DFT grid of the certified norm bound (``>= 4 k_L``).
    """

    def __init__(self, channels: tuple[int, ...] = (1, 4, 8, 60), kernel_size: int = 5, *, grid: int = 256) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or channels[0] != 1 or min(channels) < 1:
            raise ValueError(f"channels must be (1, c_1, ..., c_L) with every c_i >= 1, got {channels!r}")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.size = (len(channels) - 1) * (kernel_size - 1) + 1
        if not isinstance(grid, int) or grid < 4 * self.size:
            raise ValueError(f"grid must be an integer >= 4 x the composed kernel size {self.size}, got {grid!r}")
        self.grid = grid
        self.factor = sampling_factor((self.size, self.size), grid=grid)
        gen = torch.Generator().manual_seed(0)
        ws = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            std = 1.0 / math.sqrt(cin * kernel_size * kernel_size)
            ws.append(nn.Parameter(torch.randn(cout, cin, kernel_size, kernel_size, generator=gen) * std))
        self.weights = nn.ParameterList(ws)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def raw_kernel(self) -> torch.Tensor:
        """The composed kernel before normalisation, first layer projected to zero mean."""
        w1 = self.weights[0]
        w1 = w1 - w1.mean(dim=(-2, -1), keepdim=True)
        return compose_kernels([w1, *self.weights[1:]])

    def norm_bound(self, kernel: torch.Tensor) -> torch.Tensor:
        """Differentiable ``max_grid ||K_hat||_2 / sampling factor`` of a ``[C, 1, k, k]`` kernel
        (for one input channel the transfer matrix is a column: its norm is the l2 norm)."""
        khat = torch.fft.rfft2(kernel[:, 0], s=(self.grid, self.grid))
        return (khat.real.square() + khat.imag.square()).sum(0).max().sqrt() / self.factor

    def kernel(self) -> torch.Tensor:
        """The evaluated kernel ``K / B(K)``, ``[C, 1, k_L, k_L]``: ``||W|| <= 1``."""
        k = self.raw_kernel()
        return k / self.norm_bound(k)

    @staticmethod
    def apply(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``W x``: ``[N, 1, H, W] -> [N, C, H - k + 1, W - k + 1]``."""
        return F.conv2d(x, kernel)

    @staticmethod
    def apply_adjoint(kernel: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``W^T u``: ``[N, C, h, w] -> [N, 1, h + k - 1, w + k - 1]``, the full convolution
        ``sum_c K_c * u_c`` (what ``conv_transpose2d`` computes), by FFT on the
        ``(h + k - 1) x (w + k - 1)`` grid, where the circular convolution has no wrap-around.
        On a CPU this is several times faster than ``conv_transpose2d`` with one output channel."""
        k = kernel.shape[-1]
        size = (u.shape[-2] + k - 1, u.shape[-1] + k - 1)
        prod = torch.fft.rfft2(u, s=size) * torch.fft.rfft2(kernel[:, 0], s=size)
        return torch.fft.irfft2(prod.sum(1, keepdim=True), s=size)

    @staticmethod
    def torus_spectrum(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``rfft2`` of the kernel placed on the ``H x W`` torus with its centre at the origin,
        ``[C, H, W // 2 + 1]``: the transfer function of the circular convolution (``H, W >= k``)."""
        k = kernel.shape[-1]
        p = k // 2
        h, w = size
        g = kernel.new_zeros(kernel.shape[0], h, w)
        g[:, :k, :k] = kernel[:, 0]
        return torch.fft.rfft2(torch.roll(g, shifts=(-p, -p), dims=(-2, -1)))

    @staticmethod
    def apply_circular(spectrum: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``W x`` on the torus (periodic image): ``[N, 1, H, W] -> [N, C, H, W]``, the same values as
        ``conv2d`` of the circularly padded image (cross-correlation), by FFT with the spectrum of
        :meth:`torus_spectrum`."""
        size = x.shape[-2:]
        return torch.fft.irfft2(torch.fft.rfft2(x) * spectrum.conj(), s=size)

    @staticmethod
    def apply_circular_adjoint(spectrum: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``W^T u`` on the torus: ``[N, C, H, W] -> [N, 1, H, W]`` (``sum_c`` of the circular
        convolutions with ``K_c``)."""
        size = u.shape[-2:]
        return torch.fft.irfft2((torch.fft.rfft2(u) * spectrum).sum(1, keepdim=True), s=size)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, composed={self.size}, grid={self.grid}"
