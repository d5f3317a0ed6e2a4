"""BM3D as a denoiser ``D(x, sigma)`` (the ``bm3d`` package): a strong baseline without a certificate.

>>> import torch
>>> d = BM3DDenoiser()          # doctest: +SKIP
>>> d(torch.rand(1, 1, 32, 32), 0.05).shape  # doctest: +SKIP
torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from denoisers.contract import check_input, sigma_vector

__all__ = ["BM3DDenoiser"]


class BM3DDenoiser(nn.Module):
    """BM3D (grey) / CBM3D (colour) from the ``bm3d`` package as ``D(x, sigma)``.

    Runs on the CPU in float64, per image (``sigma`` float or ``[B]``); the output has ``x``'s
    device and dtype. No certificate: BM3D is not known to be non-expansive, so PnP with it
    carries no convergence guarantee.
    """

    certificate = None

    def __init__(self, *, profile: str = "np") -> None:
        super().__init__()
        try:
            import bm3d  # noqa: F401
        except ImportError as exc:  # pragma: no cover - bm3d is a dev/bench dependency
            raise ValueError("denoiser 'bm3d' needs the bm3d package (pip install bm3d)") from exc
        self.profile = profile

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        import bm3d

        check_input(x)
        if x.shape[1] not in (1, 3):
            raise ValueError(f"x must have shape [B, 1 or 3, H, W], got {tuple(x.shape)}")
        b = x.shape[0]
        s = sigma_vector(sigma, b, torch.empty(0, dtype=torch.float64), allow_zero=True).tolist()
        arr = x.detach().to("cpu", torch.float64).numpy()
        out = np.empty_like(arr)
        for i in range(b):
            si = max(float(s[i]), 1e-6)
            if arr.shape[1] == 1:
                out[i, 0] = bm3d.bm3d(arr[i, 0], sigma_psd=si, profile=self.profile)
            else:
                out[i] = np.moveaxis(bm3d.bm3d_rgb(np.moveaxis(arr[i], 0, -1), si, profile=self.profile), -1, 0)
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)
