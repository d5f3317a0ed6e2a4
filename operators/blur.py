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
* **Boundary** (``boundary=``, default ``"circular"``):

  - ``"circular"``: periodic; the FFT diagonalises ``A``, so ``A``, ``A^T``, the prox and
    ``||A||`` are all exact and closed-form (formulas below). ``x`` and ``y`` are ``[.., H, W]``.
  - ``"valid"``: ``A = C K``, the observation is the blur of an unknown *larger* image, cropped.
    ``x`` is ``[.., H + kh - 1, W + kw - 1]``, ``y = A x`` is ``[.., H, W]``; ``K`` is the circular
    blur on the ``x`` grid and ``C`` keeps the rows ``top .. top + H - 1`` and columns
    ``left .. left + W - 1`` with ``(top, left) = (kh - 1 - c_h, kw - 1 - c_w)``, exactly the
    pixels that the wrap-around never reaches. So ``A x`` is the linear ("valid") convolution,
    ``(A x)[i, j] = sum_{p, q} k[p, q] x[i + kh - 1 - p, j + kw - 1 - q]`` (independent of the
    centre, equal to ``scipy.signal.convolve2d(x, k, mode="valid")`` and to deepinv's
    ``Blur(padding="valid")``), and the restored image, aligned with ``y``, is the crop
    ``x[.., top:top + H, left:left + W]`` (:meth:`FFTBlur.observed_region`).
    ``A^T = K^T C^T`` (zero-pad, then correlate): exact. ``||A|| <= ||K|| = max |K(omega)|``
    on the ``x`` grid: a certified **upper bound**, not the exact norm (``C`` discards energy;
    the gap shrinks as the image grows). ``prox_l2`` solves ``(A^T A + I/gamma) x = A^T y + z/gamma``
    by conjugate gradients preconditioned with the circular solve (not closed-form; tolerance
    ``prox_tol``, see :meth:`FFTBlur.prox_l2`).
  - ``"reflect"`` / ``"replicate"``: ``A = C K P``: ``x`` and ``y`` are ``[.., H, W]``; ``P``
    extends ``x`` by ``(top, kh - 1 - top)`` rows and ``(left, kw - 1 - left)`` columns, by
    half-sample symmetry (``"reflect"``: ``c b a | a b c | c b a``, the edge pixel repeated, as
    ``scipy.ndimage`` ``mode="reflect"`` and numpy ``"symmetric"``) or by repeating the edge
    pixel (``"replicate"``, SciPy's ``"nearest"``). ``A x`` equals
    ``scipy.ndimage.convolve(x, k, mode="reflect"/"nearest")``. Cheaper approximations of a
    non-periodic scene (no unknown border). ``A^T = P^T K^T C^T`` exact (``P^T`` folds the
    extension back by index-add). ``||A||`` is certified from the non-negative ``C |K| P``, which
    dominates ``|A|`` entrywise (Schur test and Collatz-Wielandt ratio, :meth:`FFTBlur.opnorm`):
    an upper bound that tends to the exact norm for a non-negative kernel. ``prox_l2`` by
    the same preconditioned CG as ``"valid"``. Both need the kernel to fit in the image, so the
    padding (at most ``kh - 1`` on a side) never exceeds it and one reflection suffices.
  - Zero padding is not supported and raises :class:`ValueError`.

In the Fourier domain (``"circular"``), with ``K = rfft2(roll(pad(k)))`` the kernel's transfer
function on the ``H x W`` DFT grid:

.. math::

    A x = \mathcal F^{-1}(K \cdot \mathcal F x),\qquad
    A^\top y = \mathcal F^{-1}(\overline K \cdot \mathcal F y),\qquad
    \|A\|_2 = \max_\omega |K(\omega)|,

    \operatorname{prox}_{\gamma f}(z) = \arg\min_x \tfrac12\|Ax - y\|^2 + \tfrac1{2\gamma}\|x - z\|^2
    = \mathcal F^{-1}\Big(\frac{\overline K\,\mathcal F y + \mathcal F z / \gamma}
                              {|K|^2 + 1/\gamma}\Big).
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from deepinv.physics import LinearPhysics
from deepinv.physics.noise import ZeroNoise
from torch import Tensor

__all__ = ["BOUNDARIES", "FFTBlur", "InexactProxWarning", "NonFiniteInputError"]

#: The boundary models :class:`FFTBlur` implements (``"circular"`` is the default).
BOUNDARIES = ("circular", "valid", "reflect", "replicate")
_BOUNDARIES_SUPPORTED = BOUNDARIES
#: Power steps of the Collatz-Wielandt norm bound ("reflect"/"replicate") and the relative margin
#: added to a computed bound for float64 round-off.
_CW_ITERATIONS = 100
_ROUNDOFF_MARGIN = 1e-10
#: Default relative-residual tolerance of the CG prox (non-circular boundaries), per dtype.
_PROX_TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}
_CENTERS = ("middle", "corner")
_SPECTRUM_CACHE_SIZE = 4


class NonFiniteInputError(ValueError):
    """An input tensor holds NaN or Inf values (a :class:`ValueError`, so solvers can catch it)."""


class InexactProxWarning(UserWarning):
    """The CG prox of a non-circular :class:`FFTBlur` stopped at ``prox_max_iter`` before reaching
    ``prox_tol``."""


def _extension_index(n: int, before: int, after: int, mode: str) -> Tensor:
    """Source index, in ``0 .. n-1``, of each of the ``before + n + after`` extended positions."""
    i = torch.arange(-before, n + after)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    # half-sample symmetric ("reflect"): -1 -> 0, -2 -> 1, n -> n - 1, n + 1 -> n - 2
    j = torch.where(i < 0, -i - 1, i)
    return torch.where(j >= n, 2 * n - 1 - j, j)


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
    r"""Convolution with a fixed kernel, computed by real FFTs, with a chosen boundary model.

    Default (``boundary="circular"``): ``A x = k * x`` on images ``x`` of shape ``[B, C, H, W]``
    (any ``H, W`` at least the kernel size, any device, float32 or float64), with the exact
    adjoint, ``A^T A``, the closed-form data prox (one FFT division) and the exact spectral norm.
    ``boundary="valid"``, ``"reflect"``, ``"replicate"``: non-periodic models (module docstring):
    exact adjoint, certified upper bound of ``||A||``, prox by preconditioned CG. A
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

    **Boundary and shapes.** ``"circular"`` (default) and ``"reflect"``/``"replicate"``: ``x``
    and ``y`` are both ``[B, C, H, W]``. ``"valid"``: ``x`` is ``[B, C, H + kh - 1, W + kw - 1]``
    and ``y = A x`` is ``[B, C, H, W]``; the restored image is :meth:`observed_region` of ``x``
    (its crop aligned with ``y``; the centre crop for an odd kernel). Zero padding
    ("zeros"/"constant") is not supported and raises ValueError.

    **Maths** (``F`` the 2-D DFT):

    * ``A x = F^{-1}(K F x)``, ``A^T y = F^{-1}(conj(K) F y)``, ``A^T A x = F^{-1}(|K|^2 F x)``.
    * ``prox_l2(z, y, gamma) = argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2
      = (A^T A + I / gamma)^{-1} (A^T y + z / gamma)``: the same convention as deepinv's
      ``LinearPhysics.prox_l2`` (``argmin gamma/2 ||Ax - y||^2 + 1/2 ||x - z||^2``).
    * ``opnorm(image_size=(H, W)) = max_omega |K(omega)|``, the exact spectral norm (not squared)
      of the circular operator on ``H x W`` images; ``opnorm_sup() = sum |k| >= opnorm`` for every
      size (equal to it for a non-negative kernel).

    :param kernel: the blur kernel, see above.
    :param boundary: ``"circular"`` (default), ``"valid"``, ``"reflect"`` or ``"replicate"``.
    :param center: ``"middle"`` (origin at ``(h // 2, w // 2)``, default) or ``"corner"``.
    :param noise_model: deepinv noise model applied by :meth:`forward` (default: no noise).
    :param image_size: optional ``(H, W)`` of the input ``x`` used by :meth:`opnorm` when called
        without a size.
    :param prox_tol: relative residual ``||b - S x|| / ||b||`` at which the CG prox of the
        non-circular boundaries stops (default per dtype: 1e-10 in float64, 1e-5 in float32).
    :param prox_max_iter: CG iteration cap of that prox (default 200; an
        :class:`InexactProxWarning` is raised when it is hit before ``prox_tol``).
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
        prox_tol: float | None = None,
        prox_max_iter: int = 200,
    ) -> None:
        if boundary not in _BOUNDARIES_SUPPORTED:
            raise ValueError(
                f"boundary={boundary!r} is not supported: choose one of {', '.join(BOUNDARIES)} "
                "(zero padding is not supported)"
            )
        if prox_tol is not None:
            if isinstance(prox_tol, bool) or not isinstance(prox_tol, (int, float)):
                raise TypeError(f"prox_tol must be a float, got {type(prox_tol).__name__}")
            if not (math.isfinite(prox_tol) and 0 < prox_tol < 1):
                raise ValueError(f"prox_tol must be in (0, 1), got {prox_tol!r}")
        if isinstance(prox_max_iter, bool) or not isinstance(prox_max_iter, int) or prox_max_iter < 1:
            raise ValueError(f"prox_max_iter must be an integer >= 1, got {prox_max_iter!r}")
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
        self.prox_tol = None if prox_tol is None else float(prox_tol)
        self.prox_max_iter = int(prox_max_iter)
        #: ``(iterations, worst relative residual)`` of the last CG prox (non-circular boundaries).
        self.last_prox_info: tuple[int, float] | None = None
        self.register_buffer("kernel", kernel_t)
        self._spectra: OrderedDict[tuple, tuple[Tensor, Tensor]] = OrderedDict()
        self._kernel_stamp: tuple[int, int] = (-1, -1)
        self._colsums: dict[tuple, float] = {}
        if image_size is not None:
            self._check_size(image_size, "image_size", role="x")

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

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)``: how far the ``x`` grid of ``"valid"`` (and the extension
        of ``"reflect"``/``"replicate"``) reaches beyond the observed ``H x W`` frame:
        ``(kh - 1 - c_h, c_h, kw - 1 - c_w, c_w)``, ``(c_h, c_w)`` the kernel origin."""
        h, w = self.kernel_size
        ch, cw = self.origin
        return h - 1 - ch, ch, w - 1 - cw, cw

    def _check_size(self, hw: tuple[int, int], name: str, *, role: str) -> None:
        """Check that an input of spatial size ``hw`` playing ``role`` ("x" or "y") fits."""
        h, w = self.kernel_size
        if self.boundary == "valid":
            if role == "x" and (h > hw[0] or w > hw[1]):
                raise ValueError(
                    f"{name} of size {hw[0]}x{hw[1]} is smaller than the kernel ({h}x{w}): with "
                    f"boundary='valid' the observation A x is {name} cropped by the kernel size "
                    f"minus one and would be empty"
                )
            return
        if h > hw[0] or w > hw[1]:
            raise ValueError(
                f"kernel of size {h}x{w} is larger than the image of size {hw[0]}x{hw[1]} "
                f"(argument {name})"
            )

    def x_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the unknown ``x`` for an observation of shape ``y_shape``: the same, or for
        ``"valid"`` the observation grown by ``(kh - 1, kw - 1)``."""
        y_shape = tuple(int(s) for s in y_shape)
        if self.boundary != "valid":
            return y_shape
        h, w = self.kernel_size
        return (*y_shape[:-2], y_shape[-2] + h - 1, y_shape[-1] + w - 1)

    def observed_region(self, x: Tensor) -> Tensor:
        """The part of ``x`` aligned with the observation: ``x`` itself, or for ``"valid"`` the
        crop ``x[..., top:top + H, left:left + W]`` (``H = x_H - kh + 1``; see :attr:`pads`).
        This is the restored image of a ``"valid"`` deblurring."""
        if self.boundary != "valid":
            return x
        top, bottom, left, right = self.pads
        return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]

    @property
    def opnorm_kind(self) -> str:
        """What :meth:`opnorm` returns: ``"exact"`` (circular) or ``"upper bound"`` (else)."""
        return "exact" if self.boundary == "circular" else "upper bound"

    @property
    def prox_is_exact(self) -> bool:
        """``True`` when :meth:`prox_l2` is closed-form (circular), ``False`` when it is CG."""
        return self.boundary == "circular"

    def prox_description(self) -> str:
        """One line saying how :meth:`prox_l2` is computed."""
        if self.prox_is_exact:
            return "closed form (one FFT division)"
        tol = "1e-10 (float64) / 1e-5 (float32)" if self.prox_tol is None else f"{self.prox_tol:g}"
        return (
            f"conjugate gradients preconditioned by the circular solve, to relative residual "
            f"{tol} (at most {self.prox_max_iter} iterations)"
        )

    def _check_input(self, x: Any, name: str, role: str = "x") -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.is_complex():
            raise TypeError(f"{name} must be real, got complex dtype {x.dtype}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim != 4:
            raise ValueError(f"{name} must have shape [B, C, H, W], got shape {tuple(x.shape)}")
        self._check_size((int(x.shape[-2]), int(x.shape[-1])), name, role=role)
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
            self._colsums = {}
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
        self._colsums = {}
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
            self._colsums = {}

    # ------------------------------------------------------------------ operator
    def _fft_conv(self, x: Tensor, *, adjoint: bool = False) -> Tensor:
        """Circular convolution (or correlation when ``adjoint``) of ``x`` on its own grid."""
        spec, _ = self._spectra_for(tuple(x.shape[-2:]), x.device, x.dtype)
        if adjoint:
            spec = spec.conj()
        return torch.fft.irfft2(torch.fft.rfft2(x) * spec, s=x.shape[-2:])

    def _extend(self, x: Tensor) -> Tensor:
        """``P x``: the ``"reflect"``/``"replicate"`` extension of ``x`` by :attr:`pads`."""
        top, bottom, left, right = self.pads
        H, W = int(x.shape[-2]), int(x.shape[-1])
        ri = _extension_index(H, top, bottom, self.boundary).to(x.device)
        ci = _extension_index(W, left, right, self.boundary).to(x.device)
        return x.index_select(-2, ri).index_select(-1, ci)

    def _fold(self, u: Tensor, hw: tuple[int, int]) -> Tensor:
        """``P^T u``: add each extended pixel back onto its source pixel (exact adjoint of
        :meth:`_extend`)."""
        top, bottom, left, right = self.pads
        H, W = hw
        ri = _extension_index(H, top, bottom, self.boundary).to(u.device)
        ci = _extension_index(W, left, right, self.boundary).to(u.device)
        rows = u.new_zeros((*u.shape[:-2], H, u.shape[-1])).index_add_(-2, ri, u)
        return rows.new_zeros((*u.shape[:-2], H, W)).index_add_(-1, ci, rows)

    def _crop(self, u: Tensor) -> Tensor:
        """``C u``: drop :attr:`pads` from a padded-grid image."""
        top, bottom, left, right = self.pads
        return u[..., top:u.shape[-2] - bottom, left:u.shape[-1] - right]

    def _crop_adjoint(self, y: Tensor) -> Tensor:
        """``C^T y``: zero-pad ``y`` by :attr:`pads`."""
        top, bottom, left, right = self.pads
        return torch.nn.functional.pad(y, (left, right, top, bottom))

    def _forward_op(self, x: Tensor) -> Tensor:
        if self.boundary == "circular":
            return self._fft_conv(x)
        if self.boundary == "valid":
            return self._crop(self._fft_conv(x))
        return self._crop(self._fft_conv(self._extend(x)))

    def _adjoint_op(self, y: Tensor) -> Tensor:
        if self.boundary == "circular":
            return self._fft_conv(y, adjoint=True)
        u = self._fft_conv(self._crop_adjoint(y), adjoint=True)
        if self.boundary == "valid":
            return u
        return self._fold(u, (int(y.shape[-2]), int(y.shape[-1])))

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``A x``: ``[B, C, H, W]`` -> ``[B, C, H, W]`` (``"valid"``: ``[B, C, H + kh - 1,
        W + kw - 1]`` -> ``[B, C, H, W]``); see the class docstring for each boundary."""
        self._reject_kwargs("A", kwargs)
        x = self._check_input(x, "x", "x")
        return self._forward_op(x)

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        """``A^T y``: circular correlation with ``k``; ``"valid"``: zero-pad ``y`` then correlate
        (output on the larger ``x`` grid); ``"reflect"``/``"replicate"``: zero-pad, correlate,
        fold the extension back."""
        self._reject_kwargs("A_adjoint", kwargs)
        y = self._check_input(y, "y", "y")
        return self._adjoint_op(y)

    def A_vjp(self, x: Tensor, v: Tensor) -> Tensor:
        """Vector-Jacobian product of the linear map: ``A^T v``."""
        return self.A_adjoint(v)

    def A_adjoint_A(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``A^T A x`` (circular: one FFT pair, multiplication by ``|K|^2``)."""
        self._reject_kwargs("A_adjoint_A", kwargs)
        x = self._check_input(x, "x", "x")
        if self.boundary != "circular":
            return self._adjoint_op(self._forward_op(x))
        _, power = self._spectra_for(tuple(x.shape[-2:]), x.device, x.dtype)
        return torch.fft.irfft2(torch.fft.rfft2(x) * power, s=x.shape[-2:])

    def A_A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        """``A A^T y`` (equal to ``A^T A y`` for a circular convolution)."""
        self._reject_kwargs("A_A_adjoint", kwargs)
        if self.boundary != "circular":
            y = self._check_input(y, "y", "y")
            return self._forward_op(self._adjoint_op(y))
        return self.A_adjoint_A(y)

    def prox_l2(self, z: Tensor | float | None, y: Tensor, gamma: float | Tensor, **kwargs: Any) -> Tensor:
        r"""``argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2``.

        Equals ``(A^T A + I/gamma)^{-1} (A^T y + z/gamma)``, i.e. deepinv's convention
        (``argmin gamma/2 ||Ax - y||^2 + 1/2 ||x - z||^2``).

        * ``"circular"``: one FFT division, exact.
        * ``"valid"``, ``"reflect"``, ``"replicate"``: ``A^T A`` is not diagonal in the Fourier
          basis, so the system ``S x = b``, ``S = A^T A + I/gamma``, is solved by conjugate
          gradients (per image), preconditioned by the circular system on the ``x`` grid
          ``(|K|^2 + 1/gamma)^{-1}`` (one FFT division), started from the preconditioned right-hand
          side, stopped when every image has ``||b - S x|| / ||b|| <= prox_tol`` (default 1e-10 in
          float64, 1e-5 in float32) or after ``prox_max_iter`` iterations
          (:class:`InexactProxWarning`). ``S`` has condition number at most
          ``1 + gamma ||A||^2`` (3 at ``gamma = 2 / ||A||^2``), so few iterations are needed.
          The result is the prox up to that tolerance: solvers built on it (HQS, ADMM) say so in
          their guarantee. :attr:`last_prox_info` holds ``(iterations, worst residual)``.

        :param z: the point (shape of ``x``); ``None`` or a number means a constant image
            (``None`` as 0), as in deepinv.
        :param y: the measurements ``[B, C, H, W]``.
        :param gamma: step ``> 0``: a float, a 0-d tensor or a ``[B]`` tensor (one per image).
        :return: the minimiser, shape of ``x``, dtype of ``y`` (promoted with ``z``'s dtype).
        """
        # deepinv's generic prox_l2 takes iterative-solver options; the closed form needs none.
        for name in ("solver", "max_iter", "tol", "verbose"):
            kwargs.pop(name, None)
        self._reject_kwargs("prox_l2", kwargs)
        y = self._check_input(y, "y", "y")
        x_shape = self.x_shape(tuple(y.shape))
        if z is None or (isinstance(z, (int, float)) and not isinstance(z, bool)):
            z = y.new_full(x_shape, 0.0 if z is None else float(z))
        z = self._check_input(z, "z", "x")
        if tuple(z.shape) != x_shape:
            raise ValueError(
                f"z has shape {tuple(z.shape)} but must have shape {x_shape} (that of x) for y "
                f"of shape {tuple(y.shape)}"
            )
        dtype = torch.promote_types(z.dtype, y.dtype)
        y, z = y.to(dtype), z.to(dtype)
        g = _as_gamma(gamma, batch=int(y.shape[0]), device=y.device, dtype=dtype)
        if self.boundary != "circular":
            return self._prox_cg(z, y, g)
        spec, power = self._spectra_for(tuple(y.shape[-2:]), y.device, dtype)
        num = torch.fft.rfft2(y) * spec.conj() + torch.fft.rfft2(z) / g
        return torch.fft.irfft2(num / (power + 1.0 / g), s=y.shape[-2:])

    def _prox_cg(self, z: Tensor, y: Tensor, g: Tensor | float) -> Tensor:
        """Preconditioned CG for ``(A^T A + I/g) x = A^T y + z/g`` (see :meth:`prox_l2`)."""
        hw = tuple(z.shape[-2:])
        _, power = self._spectra_for(hw, z.device, z.dtype)
        inv_g = 1.0 / g

        def apply_s(v: Tensor) -> Tensor:
            return self._adjoint_op(self._forward_op(v)) + v * inv_g

        def precondition(r: Tensor) -> Tensor:
            return torch.fft.irfft2(torch.fft.rfft2(r) / (power + inv_g), s=hw)

        def dot(a: Tensor, b: Tensor) -> Tensor:  # per image, shaped to broadcast
            return (a * b).sum(dim=(1, 2, 3), keepdim=True)

        b = self._adjoint_op(y) + z * inv_g
        b_norm = dot(b, b).sqrt()
        safe_b = torch.where(b_norm > 0, b_norm, torch.ones_like(b_norm))
        tol = self.prox_tol if self.prox_tol is not None else _PROX_TOL.get(z.dtype, 1e-5)
        x = precondition(b)
        r = b - apply_s(x)
        worst = float((dot(r, r).sqrt() / safe_b).max())
        iters = 0
        if worst > tol:
            p = precondition(r)
            rz = dot(r, p)
            while iters < self.prox_max_iter:
                sp = apply_s(p)
                den = dot(p, sp)
                alpha = torch.where(den > 0, rz / torch.where(den > 0, den, torch.ones_like(den)),
                                    torch.zeros_like(den))
                x = x + alpha * p
                r = r - alpha * sp
                iters += 1
                worst = float((dot(r, r).sqrt() / safe_b).max())
                if worst <= tol:
                    break
                zr = precondition(r)
                rz_new = dot(r, zr)
                beta = torch.where(rz > 0, rz_new / torch.where(rz > 0, rz, torch.ones_like(rz)),
                                   torch.zeros_like(rz))
                p = zr + beta * p
                rz = rz_new
        self.last_prox_info = (iters, worst)
        if worst > tol:
            warnings.warn(
                f"FFTBlur.prox_l2 (boundary={self.boundary!r}): CG stopped after {iters} "
                f"iterations at relative residual {worst:.3g} > prox_tol {tol:g}",
                InexactProxWarning, stacklevel=3,
            )
        return x

    def forward(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``N(A x)``: the blur then the noise model (deepinv's ``physics(x)``)."""
        return self.sensor(self.noise(self.A(x), **kwargs))

    # ------------------------------------------------------------------ norms
    def opnorm(self, image_size: tuple[int, int] | None = None) -> float:
        """Spectral norm ``||A||_2`` (not squared) for inputs ``x`` of size ``image_size``:
        exact for ``"circular"``, a certified upper bound otherwise (:attr:`opnorm_kind`).

        * ``"circular"``: ``max_omega |K(omega)|`` on the ``H x W`` DFT grid, exact.
        * ``"valid"`` (``image_size`` is the size of ``x``, the padded grid):
          ``||C K|| <= ||K|| = max_omega |K(omega)|`` on that grid. An upper bound, not the norm:
          the crop loses energy (for a non-negative kernel the bound is ``sum k`` and the true
          norm is below it, approaching it as the image grows).
        * ``"reflect"``/``"replicate"``: ``B = C |K| P`` is non-negative and dominates ``|A|``
          entrywise, so ``||A||^2 <= rho(B^T B)``, and ``rho(B^T B)`` is bounded above by the
          Schur test (``max row sum * max column sum`` of ``B``) and by the Collatz-Wielandt
          ratio ``max_i (B^T B v)_i / v_i`` for any ``v > 0``, taken at the best of 100 power
          steps from ``v = 1`` (cached per size, plus a ``1e-10`` relative round-off margin).
          For a non-negative kernel ``B = A`` and the bound converges to the exact norm from
          above (with the Levin motion kernels the norm exceeds ``sum k = 1``: the extension
          repeats pixels; ``"replicate"`` piles a corner's weight onto one pixel).

        For per-image/per-channel kernels, the maximum over all of them (the norm of the
        block-diagonal operator). With ``image_size=None``: uses the constructor's
        ``image_size`` if given, else returns :meth:`opnorm_sup` (``sum |k|``), which is exact for
        every size when the kernel is non-negative and the boundary circular, and an upper bound
        for ``"valid"``; ``"reflect"``/``"replicate"`` need a size.
        """
        if image_size is None:
            image_size = self.image_size
        if image_size is None:
            if self.boundary in ("reflect", "replicate"):
                raise ValueError(
                    f"opnorm() with boundary={self.boundary!r} needs image_size=(H, W) (the "
                    "bound depends on the size)"
                )
            return self.opnorm_sup()
        hw = tuple(int(s) for s in image_size)
        if len(hw) != 2:
            raise ValueError(f"image_size must be (H, W), got {image_size!r}")
        self._check_size(hw, "image_size", role="x")  # type: ignore[arg-type]
        if self.boundary in ("circular", "valid"):
            _, power = self._spectra_for(hw, self.kernel.device, torch.float64)  # type: ignore[arg-type]
            return float(power.max().sqrt())
        return self._schur_bound(hw)  # type: ignore[arg-type]

    def _schur_bound(self, hw: tuple[int, int]) -> float:
        """Certified upper bound of ``||A||`` for ``"reflect"``/``"replicate"`` (see :meth:`opnorm`)."""
        self._spectra_for(hw, self.kernel.device, torch.float64)  # refreshes caches on kernel change
        key = (hw, str(self.kernel.device))
        hit = self._colsums.get(key)
        if hit is not None:
            return hit
        # B = C |K| P is non-negative and dominates |A| entrywise, so ||A||^2 = rho(A^T A)
        # <= rho(|A|^T |A|) <= rho(B^T B).
        absop = FFTBlur(self.kernel.abs(), boundary=self.boundary, center=self.center,
                        check_finite=False)
        kb, kc = int(self.kernel.shape[0]), int(self.kernel.shape[1])
        v = torch.ones((kb, kc, *hw), dtype=torch.float64, device=self.kernel.device)
        # Schur test: ||B||^2 <= (max row sum) (max column sum); the column sums are B^T 1.
        col = absop._adjoint_op(v).amax(dim=(-2, -1))
        row = self.kernel.abs().sum(dim=(-2, -1))
        best = row * col
        # Collatz-Wielandt: rho(M) <= max_i (M v)_i / v_i for any v > 0 and M = B^T B >= 0 (one
        # bound per kernel block); powers of M drive v towards the Perron vector, where the
        # bound meets rho(M), i.e. ||A||^2 itself for a non-negative kernel (|A| = B = A).
        for _ in range(_CW_ITERATIONS):
            w = absop._adjoint_op(absop._forward_op(v))
            ratio = torch.nan_to_num(w / v, nan=math.inf).amax(dim=(-2, -1))
            best = torch.minimum(best, ratio)
            v = w / w.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
        value = float(best.max().clamp_min(0.0).sqrt()) * (1.0 + _ROUNDOFF_MARGIN)
        self._colsums[key] = value
        return value

    def opnorm_sup(self) -> float:
        """``sum |k|``: an upper bound of ``||A||_2`` valid for every image size for the
        ``"circular"`` and ``"valid"`` boundaries (Young's inequality / ``|K(omega)| <= sum |k|``);
        equal to the circular norm for non-negative kernels. Not a bound for
        ``"reflect"``/``"replicate"`` (the extension repeats pixels): raises ValueError there."""
        if self.boundary in ("reflect", "replicate"):
            raise ValueError(
                f"opnorm_sup() is not an upper bound with boundary={self.boundary!r}; "
                "use opnorm(image_size=(H, W))"
            )
        return float(self.kernel.abs().sum(dim=(-2, -1)).max())

    def extra_repr(self) -> str:
        h, w = self.kernel_size
        return (
            f"kernel={tuple(self.kernel.shape)} ({h}x{w}), boundary={self.boundary!r}, "
            f"center={self.center!r}"
        )
