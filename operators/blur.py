r"""Circular blur by FFT: ``A x = k * x`` with periodic boundary, exact adjoint, prox and norm.

Conventions (tested against :func:`scipy.ndimage.convolve` with ``mode='wrap'``):

* **Convolution, not correlation.** ``(A x)[i, j] = sum_{p, q} k[p, q] x[(i - p + c_h) mod H,
  (j - q + c_w) mod W]`` where ``(c_h, c_w)`` is the kernel centre.
* **Centre** (``center="middle"``, the default): ``(c_h, c_w) = (h // 2, w // 2)`` for odd *and*
  even kernel sizes. This is the origin SciPy's ``ndimage.convolve`` uses with ``origin=0``
  (for an even size ``h`` it puts the centre at ``h // 2``, i.e. one past the geometric middle),
  and the one deepinv's :class:`~deepinv.physics.BlurFFT` uses (a roll by ``-(h // 2)``).
  A delta image at ``(i0, j0)`` is mapped to the kernel with entry ``k[h//2, w//2]`` at
  ``(i0, j0)``, wrapped around the borders. ``center="corner"`` puts the origin at ``k[0, 0]``
  (a causal filter, ``(c_h, c_w) = (0, 0)``).
* **Boundary**: only ``"circular"`` (periodic) is supported; it is the only boundary for which the
  FFT diagonalises the operator. Zero and reflect padding are not supported yet and raise
  :class:`ValueError`.

In the Fourier domain, with ``K = rfft2(roll(pad(k)))`` the kernel's transfer function on the
``H x W`` DFT grid:

.. math::

    A x = \mathcal F^{-1}(K \cdot \mathcal F x),\qquad
    A^\top y = \mathcal F^{-1}(\overline K \cdot \mathcal F y),\qquad
    \|A\|_2 = \max_\omega |K(\omega)|,

    \operatorname{prox}_{\gamma f}(z) = \arg\min_x \tfrac12\|Ax - y\|^2 + \tfrac1{2\gamma}\|x - z\|^2
    = \mathcal F^{-1}\Big(\frac{\overline K\,\mathcal F y + \mathcal F z / \gamma}
                              {|K|^2 + 1/\gamma}\Big).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from deepinv.physics import LinearPhysics
from deepinv.physics.noise import ZeroNoise
from torch import Tensor

__all__ = ["FFTBlur", "NonFiniteInputError"]

_BOUNDARIES_SUPPORTED = ("circular",)
_CENTERS = ("middle", "corner")
_SPECTRUM_CACHE_SIZE = 4


class NonFiniteInputError(ValueError):
    """An input tensor holds NaN or Inf values (a :class:`ValueError`, so solvers can catch it)."""


def _as_kernel_tensor(kernel: Any) -> Tensor:
    """Kernel as a detached 4-D float64 tensor ``[Bk, Ck, h, w]`` (validated)."""
    if isinstance(kernel, np.ndarray):
        if np.iscomplexobj(kernel):
            raise TypeError(f"kernel must be real, got a complex array of dtype {kernel.dtype}")
        kernel = torch.from_numpy(np.asarray(kernel, dtype=np.float64))
    if not isinstance(kernel, Tensor):
        raise TypeError(f"kernel must be a torch.Tensor or numpy.ndarray, got {type(kernel).__name__}")
    if kernel.is_complex():
        raise TypeError(f"kernel must be real, got dtype {kernel.dtype}")
    if kernel.ndim == 2:
        kernel = kernel[None, None]
    elif kernel.ndim != 4:
        raise ValueError(
            f"kernel must have shape [h, w], [B, 1, h, w] or [B, C, h, w], got shape {tuple(kernel.shape)}"
        )
    if kernel.shape[-2] < 1 or kernel.shape[-1] < 1 or kernel.shape[0] < 1 or kernel.shape[1] < 1:
        raise ValueError(f"kernel must not be empty, got shape {tuple(kernel.shape)}")
    kernel = kernel.detach().to(torch.float64)
    if not bool(torch.isfinite(kernel).all()):
        raise ValueError("kernel holds NaN or Inf values")
    return kernel.clone()


def _as_gamma(gamma: Any, *, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor | float:
    """Validate ``gamma`` (float, 0-d, ``[B]`` or ``[B, 1, 1, 1]`` tensor) and shape it to broadcast."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, Tensor)):
        raise TypeError(f"gamma must be a float or a tensor, got {type(gamma).__name__}")
    if isinstance(gamma, Tensor):
        if gamma.is_complex():
            raise TypeError(f"gamma must be real, got dtype {gamma.dtype}")
        g = gamma.to(device=device, dtype=dtype)
        if g.ndim == 0 or g.numel() == 1:
            g = g.reshape(1, 1, 1, 1)
        elif g.ndim == 1 or (g.ndim == 4 and g.shape[1:] == (1, 1, 1)):
            if g.shape[0] != batch:
                raise ValueError(
                    f"gamma has {g.shape[0]} entries but the batch has {batch} images"
                )
            g = g.reshape(-1, 1, 1, 1)
        else:
            raise ValueError(
                f"gamma must be a float, a 0-d tensor or a [B] tensor, got shape {tuple(gamma.shape)}"
            )
        if not bool(torch.isfinite(g).all()) or bool((g <= 0).any()):
            raise ValueError(f"gamma must be finite and > 0, got {gamma.detach().cpu().flatten().tolist()}")
        return g
    value = float(gamma)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"gamma must be finite and > 0, got {gamma!r}")
    return value


class FFTBlur(LinearPhysics):
    r"""Circular (periodic) convolution with a fixed kernel, computed by real FFTs.

    ``A x = k * x`` on images ``x`` of shape ``[B, C, H, W]`` (any ``H, W`` at least the kernel
    size, any device, float32 or float64), with the exact adjoint, ``A^T A``, the closed-form
    data prox (one FFT division) and the exact spectral norm. A
    :class:`deepinv.physics.LinearPhysics`, so deepinv's solvers accept it.

    **Kernel.** ``[h, w]`` (one kernel for every image and channel), ``[B, 1, h, w]`` (one per
    image, shared across channels), ``[1, C, h, w]`` or ``[B, C, h, w]``; a torch tensor or numpy
    array. It is copied and stored in float64 (buffer ``kernel``); the transfer function
    ``K = rfft2(kernel padded to H x W and rolled so that its centre sits at (0, 0))`` is computed
    in the input's dtype on the input's device and cached per ``(H, W, device, dtype)`` (last
    4 entries). Any real kernel is accepted (signed ones too, e.g. finite differences); use
    :func:`operators.validate_kernel` to check a blur kernel (non-negative, sums to 1).

    **Centre convention** (``center="middle"``): the kernel origin is the entry
    ``(h // 2, w // 2)``, for odd and even sizes alike. ``A x`` equals
    ``scipy.ndimage.convolve(x, k, mode="wrap")`` (SciPy uses that same origin for even sizes)
    and deepinv's ``BlurFFT``; a delta image returns the kernel centred on the delta, wrapped.
    ``center="corner"`` takes ``k[0, 0]`` as the origin.

    **Boundary.** Only ``boundary="circular"`` is exact with the FFT and implemented. Zero
    ("zeros"/"constant") and "reflect" padding are *not supported yet* and raise ValueError.

    **Maths** (``F`` the 2-D DFT):

    * ``A x = F^{-1}(K F x)``, ``A^T y = F^{-1}(conj(K) F y)``, ``A^T A x = F^{-1}(|K|^2 F x)``.
    * ``prox_l2(z, y, gamma) = argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2
      = (A^T A + I / gamma)^{-1} (A^T y + z / gamma)``: the same convention as deepinv's
      ``LinearPhysics.prox_l2`` (``argmin gamma/2 ||Ax - y||^2 + 1/2 ||x - z||^2``).
    * ``opnorm(image_size=(H, W)) = max_omega |K(omega)|``, the exact spectral norm (not squared)
      of the circular operator on ``H x W`` images; ``opnorm_sup() = sum |k| >= opnorm`` for every
      size (equal to it for a non-negative kernel).

    :param kernel: the blur kernel, see above.
    :param boundary: ``"circular"`` (the only supported value).
    :param center: ``"middle"`` (origin at ``(h // 2, w // 2)``, default) or ``"corner"``.
    :param noise_model: deepinv noise model applied by :meth:`forward` (default: no noise).
    :param image_size: optional ``(H, W)`` used by :meth:`opnorm` when called without a size.
    :param check_finite: if True (default), ``A``, ``A_adjoint``, ``A_adjoint_A`` and ``prox_l2``
        raise :class:`NonFiniteInputError` (a ValueError) on NaN/Inf input.

    Example::

        >>> import torch
        >>> from operators import FFTBlur
        >>> op = FFTBlur(torch.ones(3, 3) / 9)
        >>> x = torch.zeros(1, 1, 8, 8); x[0, 0, 4, 4] = 1.0
        >>> y = op.A(x)                      # 3x3 box around (4, 4)
        >>> round(float(y.sum()), 6), round(op.opnorm(image_size=(8, 8)), 6)
        (1.0, 1.0)
    """

    def __init__(
        self,
        kernel: Tensor | np.ndarray,
        *,
        boundary: str = "circular",
        center: str = "middle",
        noise_model: Any = None,
        image_size: tuple[int, int] | None = None,
        check_finite: bool = True,
    ) -> None:
        if boundary not in _BOUNDARIES_SUPPORTED:
            raise ValueError(
                f"boundary={boundary!r} is not supported: only 'circular' is exact with the FFT "
                "(zero and reflect padding are not supported yet)"
            )
        if center not in _CENTERS:
            raise ValueError(f"center must be one of {_CENTERS}, got {center!r}")
        if image_size is not None:
            image_size = tuple(int(s) for s in image_size)
            if len(image_size) != 2 or min(image_size) < 1:
                raise ValueError(f"image_size must be (H, W) with positive entries, got {image_size!r}")
        kernel_t = _as_kernel_tensor(kernel)
        super().__init__(noise_model=ZeroNoise() if noise_model is None else noise_model)
        self.boundary = boundary
        self.center = center
        self.image_size = image_size
        self.check_finite = bool(check_finite)
        self.register_buffer("kernel", kernel_t)
        self._spectra: OrderedDict[tuple, tuple[Tensor, Tensor]] = OrderedDict()
        self._kernel_stamp: tuple[int, int] = (-1, -1)
        if image_size is not None:
            self._check_kernel_fits(image_size)

    # ------------------------------------------------------------------ helpers
    @property
    def kernel_size(self) -> tuple[int, int]:
        """``(h, w)`` of the kernel."""
        return int(self.kernel.shape[-2]), int(self.kernel.shape[-1])

    @property
    def origin(self) -> tuple[int, int]:
        """Index of the kernel entry taken as the origin: ``(h // 2, w // 2)`` or ``(0, 0)``."""
        h, w = self.kernel_size
        return (h // 2, w // 2) if self.center == "middle" else (0, 0)

    def _check_kernel_fits(self, hw: tuple[int, int]) -> None:
        h, w = self.kernel_size
        if h > hw[0] or w > hw[1]:
            raise ValueError(
                f"kernel of size {h}x{w} is larger than the image of size {hw[0]}x{hw[1]}"
            )

    def _check_input(self, x: Any, name: str) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.is_complex():
            raise TypeError(f"{name} must be real, got complex dtype {x.dtype}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim != 4:
            raise ValueError(f"{name} must have shape [B, C, H, W], got shape {tuple(x.shape)}")
        self._check_kernel_fits((int(x.shape[-2]), int(x.shape[-1])))
        kb, kc = int(self.kernel.shape[0]), int(self.kernel.shape[1])
        if kb != 1 and kb != x.shape[0]:
            raise ValueError(
                f"kernel holds {kb} per-image kernels but {name} has batch size {x.shape[0]}"
            )
        if kc != 1 and kc != x.shape[1]:
            raise ValueError(
                f"kernel holds {kc} per-channel kernels but {name} has {x.shape[1]} channels"
            )
        # A sum is NaN/Inf whenever an entry is, and is ~10x cheaper than isfinite().all();
        # the full test only runs to rule out an overflowing sum of finite entries.
        if (
            self.check_finite
            and not bool(torch.isfinite(x.sum()))
            and not bool(torch.isfinite(x).all())
        ):
            raise NonFiniteInputError(f"{name} holds NaN or Inf values")
        return x

    @staticmethod
    def _reject_kwargs(method: str, kwargs: dict[str, Any]) -> None:
        extra = {k: v for k, v in kwargs.items() if v is not None}
        if extra:
            raise TypeError(f"FFTBlur.{method}() got unexpected keyword arguments {sorted(extra)}")

    def spectrum(self, image_size: tuple[int, int], *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float64) -> Tensor:
        """Transfer function ``K`` on the ``H x W`` rfft grid: complex ``[Bk, Ck, H, W // 2 + 1]``.

        Cached per ``(H, W, device, dtype)`` (the last 4 combinations).
        """
        return self._spectra_for(tuple(int(s) for s in image_size), device, dtype)[0]

    def _spectra_for(self, hw: tuple[int, int], device: Any, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        device = torch.device(device) if device is not None else self.kernel.device
        # In-place changes of the kernel buffer (load_state_dict, kernel.copy_) bump its version:
        # the cached spectra are then stale.
        stamp = (self.kernel.data_ptr(), self.kernel._version)
        if stamp != self._kernel_stamp:
            self._spectra = OrderedDict()
            self._kernel_stamp = stamp
        key = (hw[0], hw[1], str(device), dtype)
        hit = self._spectra.get(key)
        if hit is not None:
            self._spectra.move_to_end(key)
            return hit
        self._check_kernel_fits(hw)
        h, w = self.kernel_size
        k = self.kernel.to(device=device, dtype=dtype)
        padded = torch.nn.functional.pad(k, (0, hw[1] - w, 0, hw[0] - h))
        ch, cw = self.origin
        padded = torch.roll(padded, shifts=(-ch, -cw), dims=(-2, -1))
        spec = torch.fft.rfft2(padded)
        power = spec.real.square() + spec.imag.square()
        self._spectra[key] = (spec, power)
        while len(self._spectra) > _SPECTRUM_CACHE_SIZE:
            self._spectra.popitem(last=False)
        return spec, power

    def _apply(self, fn: Any, recurse: bool = True) -> FFTBlur:  # torch.nn.Module hook
        # Moving/casting the module (to(), cuda(), double()) invalidates the cached spectra.
        self._spectra = OrderedDict()
        return super()._apply(fn, recurse)

    def update_parameters(self, kernel: Tensor | np.ndarray | None = None, **kwargs: Any) -> None:
        """Replace the kernel (deepinv's ``physics.update(kernel=...)``); clears the spectrum cache.

        Other keywords are ignored here (deepinv passes noise parameters through this hook).
        """
        if kernel is not None:
            new = _as_kernel_tensor(kernel).to(self.kernel.device)
            if self.image_size is not None:
                h, w = new.shape[-2:]
                if h > self.image_size[0] or w > self.image_size[1]:
                    raise ValueError(
                        f"kernel of size {h}x{w} is larger than image_size {self.image_size}"
                    )
            self.kernel = new
            self._spectra = OrderedDict()

    # ------------------------------------------------------------------ operator
    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``k * x`` (circular convolution), shape ``[B, C, H, W]`` -> ``[B, C, H, W]``."""
        self._reject_kwargs("A", kwargs)
        x = self._check_input(x, "x")
        spec, _ = self._spectra_for(tuple(x.shape[-2:]), x.device, x.dtype)
        return torch.fft.irfft2(torch.fft.rfft2(x) * spec, s=x.shape[-2:])

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        """``A^T y``: circular correlation with ``k`` (convolution with the flipped kernel)."""
        self._reject_kwargs("A_adjoint", kwargs)
        y = self._check_input(y, "y")
        spec, _ = self._spectra_for(tuple(y.shape[-2:]), y.device, y.dtype)
        return torch.fft.irfft2(torch.fft.rfft2(y) * spec.conj(), s=y.shape[-2:])

    def A_vjp(self, x: Tensor, v: Tensor) -> Tensor:
        """Vector-Jacobian product of the linear map: ``A^T v``."""
        return self.A_adjoint(v)

    def A_adjoint_A(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``A^T A x`` with one FFT pair (multiplication by ``|K|^2``)."""
        self._reject_kwargs("A_adjoint_A", kwargs)
        x = self._check_input(x, "x")
        _, power = self._spectra_for(tuple(x.shape[-2:]), x.device, x.dtype)
        return torch.fft.irfft2(torch.fft.rfft2(x) * power, s=x.shape[-2:])

    def A_A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        """``A A^T y`` (equal to ``A^T A y`` for a circular convolution)."""
        self._reject_kwargs("A_A_adjoint", kwargs)
        return self.A_adjoint_A(y)

    def prox_l2(self, z: Tensor | float | None, y: Tensor, gamma: float | Tensor, **kwargs: Any) -> Tensor:
        r"""``argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2``, one FFT division.

        Equals ``(A^T A + I/gamma)^{-1} (A^T y + z/gamma)``, i.e. deepinv's convention
        (``argmin gamma/2 ||Ax - y||^2 + 1/2 ||x - z||^2``).

        :param z: the point ``[B, C, H, W]``; ``None`` or a number means a constant image
            (``None`` as 0), as in deepinv.
        :param y: the measurements ``[B, C, H, W]``.
        :param gamma: step ``> 0``: a float, a 0-d tensor or a ``[B]`` tensor (one per image).
        :return: the minimiser, shape and dtype of ``y`` (promoted with ``z``'s dtype).
        """
        # deepinv's generic prox_l2 takes iterative-solver options; the closed form needs none.
        for name in ("solver", "max_iter", "tol", "verbose"):
            kwargs.pop(name, None)
        self._reject_kwargs("prox_l2", kwargs)
        y = self._check_input(y, "y")
        if z is None or (isinstance(z, (int, float)) and not isinstance(z, bool)):
            z = torch.full_like(y, 0.0 if z is None else float(z))
        z = self._check_input(z, "z")
        if z.shape != y.shape:
            raise ValueError(f"z has shape {tuple(z.shape)} but y has shape {tuple(y.shape)}")
        dtype = torch.promote_types(z.dtype, y.dtype)
        y, z = y.to(dtype), z.to(dtype)
        g = _as_gamma(gamma, batch=int(y.shape[0]), device=y.device, dtype=dtype)
        spec, power = self._spectra_for(tuple(y.shape[-2:]), y.device, dtype)
        num = torch.fft.rfft2(y) * spec.conj() + torch.fft.rfft2(z) / g
        return torch.fft.irfft2(num / (power + 1.0 / g), s=y.shape[-2:])

    def forward(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``N(A x)``: the blur then the noise model (deepinv's ``physics(x)``)."""
        return self.sensor(self.noise(self.A(x), **kwargs))

    # ------------------------------------------------------------------ norms
    def opnorm(self, image_size: tuple[int, int] | None = None) -> float:
        """Exact spectral norm ``||A||_2 = max_omega |K(omega)|`` on the ``H x W`` DFT grid.

        Not squared. For per-image/per-channel kernels, the maximum over all of them (the norm of
        the block-diagonal operator). With ``image_size=None``: uses the constructor's
        ``image_size`` if given, else returns :meth:`opnorm_sup` (``sum |k|``), which is exact for
        every size when the kernel is non-negative (``max |K| = K(0) = sum k``) and an upper
        bound otherwise.
        """
        if image_size is None:
            image_size = self.image_size
        if image_size is None:
            return self.opnorm_sup()
        hw = tuple(int(s) for s in image_size)
        if len(hw) != 2:
            raise ValueError(f"image_size must be (H, W), got {image_size!r}")
        self._check_kernel_fits(hw)  # type: ignore[arg-type]
        _, power = self._spectra_for(hw, self.kernel.device, torch.float64)  # type: ignore[arg-type]
        return float(power.max().sqrt())

    def opnorm_sup(self) -> float:
        """``sum |k|``: an upper bound of ``||A||_2`` valid for every image size (Young's
        inequality / ``|K(omega)| <= sum |k|``); equal to the norm for non-negative kernels."""
        return float(self.kernel.abs().sum(dim=(-2, -1)).max())

    def extra_repr(self) -> str:
        h, w = self.kernel_size
        return (
            f"kernel={tuple(self.kernel.shape)} ({h}x{w}), boundary={self.boundary!r}, "
            f"center={self.center!r}"
        )
