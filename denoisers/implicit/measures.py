"""Non-Euclidean matrix measures, induced norms and the contractive parametrisations.

Notation (``A`` is ``n x n``, ``eta > 0`` a weight vector, ``E = diag(eta)``):

* weighted l-infinity norm ``||x||_{inf,eta} = max_i |x_i| / eta_i = ||E^{-1} x||_inf``;
* induced matrix norm ``||M||_{inf,eta} = ||E^{-1} M E||_inf``
  (``||M||_inf = max_i sum_j |m_ij|``, the largest absolute row sum);
* matrix measure (logarithmic norm) ``mu_{inf,eta}(A) = lim_{h->0+} (||I + h A||_{inf,eta} - 1) / h``,
  in closed form ``mu_{inf,eta}(A) = max_i ( a_ii + sum_{j != i} |a_ij| eta_j / eta_i )``;
  ``eta = 1`` gives ``mu_inf(A) = max_i ( a_ii + sum_{j != i} |a_ij| )``.
  ``mu_1(A) = mu_inf(A^T)`` (largest "column" measure).

Parametrisation (dense). For any real ``T`` (``n x n``) and ``gamma``::

    A = gamma I + T - diag( |T| eta / eta )      i.e.  a_ii = gamma + t_ii - sum_j |t_ij| eta_j / eta_i,
                                                       a_ij = t_ij (i != j).

Row ``i`` of the weighted measure is then
``gamma + t_ii - sum_j |t_ij| eta_j/eta_i + sum_{j != i} |t_ij| eta_j/eta_i = gamma + t_ii - |t_ii|
= gamma - 2 max(-t_ii, 0) <= gamma`` -- for *every* ``T`` (the diagonal term of ``|T| eta / eta`` is
``|t_ii|`` because ``eta_i / eta_i = 1``). The map ``T -> A`` is onto the polytope
``{A : mu_{inf,eta}(A) <= gamma}``: given such an ``A`` take ``t_ij = a_ij`` off the diagonal and
``t_ii = -(gamma - mu_i(A)) / 2``. So training ``T`` freely explores exactly the well-posed set,
with no projection and no penalty.

Convolutions. ``A`` acts on feature maps ``[C, H, W]`` as a ``C -> C`` convolution with an odd
``k x k`` kernel ``K`` (stride 1, "same" size). The materialised matrix has, in the row of output
(channel ``c``, pixel ``p``), the entry ``K[c, c', o]`` in the column of input (``c'``, ``p + o``)
for every offset ``o`` with ``p + o`` inside the image (zero padding) or taken modulo the size
(circular padding). With zero padding distinct offsets hit distinct columns, and only the centre
offset of the ``c' = c`` slice hits the diagonal, so::

    row measure (c, p) = K[c, c, ctr] + sum_{(c', o) != (c, ctr), p + o inside} |K[c, c', o]|
                       <= K[c, c, ctr] + sum_{(c', o) != (c, ctr)} |K[c, c', o]|       (interior rows)

with equality at interior pixels (boundary rows lose terms). Circular padding is exact for every
row as long as ``k <= H`` and ``k <= W`` (no two offsets alias onto one column, in particular not
onto the diagonal); smaller images are rejected. The kernel parametrisation is the dense one
applied to the "kernel row" of each output channel:
``K[c, c, ctr] = gamma + T[c, c, ctr] - sum_{c', o} |T[c, c', o]|`` (other entries ``= T``), whose
interior row measure is ``gamma + t - |t| <= gamma``. :func:`conv_matrix_measure_inf` returns the
exact measure of the materialised operator for a given size (boundary effects included);
:func:`materialize_conv` builds the matrix for checks on small cases.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "matrix_measure_inf",
    "matrix_measure_1",
    "norm_inf",
    "norm_1",
    "norm_2_to_inf",
    "linf_contractive_matrix",
    "conv_linf_contractive_kernel",
    "conv_kernel_measure_inf",
    "conv_kernel_measure_1",
    "conv_kernel_norm_inf",
    "conv_kernel_norm_1",
    "conv_matrix_measure_inf",
    "materialize_conv",
    "average_step",
]

Padding = Literal["zeros", "circular"]


def _check_matrix(name: str, M: torch.Tensor, *, square: bool = False) -> None:
    if not isinstance(M, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(M).__name__}")
    if M.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(M.shape)}")
    if square and M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be square, got shape {tuple(M.shape)}")


def _check_eta(eta: torch.Tensor | None, n: int) -> None:
    if eta is None:
        return
    if eta.shape != (n,):
        raise ValueError(f"eta must have shape ({n},), got {tuple(eta.shape)}")
    if not bool(torch.all(eta > 0)):
        raise ValueError(f"eta must be positive, got min {float(eta.min())!r}")


def matrix_measure_inf(A: torch.Tensor, *, eta: torch.Tensor | None = None) -> torch.Tensor:
    """``mu_{inf,eta}(A) = max_i (a_ii + sum_{j != i} |a_ij| eta_j / eta_i)`` (``eta = 1`` if None).

    Differentiable; returns a 0-d tensor.
    """
    _check_matrix("A", A, square=True)
    _check_eta(eta, A.shape[0])
    M = A if eta is None else A * eta[None, :] / eta[:, None]
    diag = torch.diagonal(M)
    rows = diag + M.abs().sum(dim=1) - diag.abs()
    return rows.max()


def matrix_measure_1(A: torch.Tensor, *, eta: torch.Tensor | None = None) -> torch.Tensor:
    """``mu_1(A) = mu_inf(A^T)`` (largest diagonal + off-diagonal absolute column sum).

    With ``eta`` this is the measure of ``E^{-1} A E`` in l1, i.e. ``mu_inf`` of ``(E^{-1} A E)^T``.
    """
    _check_matrix("A", A, square=True)
    _check_eta(eta, A.shape[0])
    M = A if eta is None else A * eta[None, :] / eta[:, None]
    return matrix_measure_inf(M.T)


def norm_inf(M: torch.Tensor) -> torch.Tensor:
    """Induced l-inf norm ``max_i sum_j |m_ij|`` (exact)."""
    _check_matrix("M", M)
    return M.abs().sum(dim=1).max()


def norm_1(M: torch.Tensor) -> torch.Tensor:
    """Induced l1 norm ``max_j sum_i |m_ij|`` (exact)."""
    _check_matrix("M", M)
    return M.abs().sum(dim=0).max()


def norm_2_to_inf(M: torch.Tensor) -> torch.Tensor:
    """Induced norm from l2 to l-inf: ``max_i ||m_i||_2`` (largest row Euclidean norm, exact)."""
    _check_matrix("M", M)
    return M.pow(2).sum(dim=1).sqrt().max()


def _check_gamma(gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise TypeError(f"gamma must be a float, got {type(gamma).__name__}")
    gamma = float(gamma)
    if not (0.0 <= gamma < 1.0) or not math.isfinite(gamma):
        raise ValueError(f"gamma must be in [0, 1) (the l-inf contraction margin), got {gamma!r}")
    return gamma


def linf_contractive_matrix(T: torch.Tensor, *, gamma: float, eta: torch.Tensor | None = None) -> torch.Tensor:
    """``A = gamma I + T - diag(|T| eta / eta)``: ``mu_{inf,eta}(A) <= gamma`` for every ``T``.

    See the module docstring for the derivation (and surjectivity onto the well-posed polytope).
    Differentiable in ``T`` and ``eta``.
    """
    gamma = _check_gamma(gamma)
    _check_matrix("T", T, square=True)
    n = T.shape[0]
    _check_eta(eta, n)
    absT = T.abs()
    rows = absT.sum(dim=1) if eta is None else (absT * eta[None, :]).sum(dim=1) / eta
    eye = torch.eye(n, dtype=T.dtype, device=T.device)
    return T + (gamma - rows).unsqueeze(1) * eye


def _check_kernel(K: torch.Tensor, name: str = "kernel", *, square: bool = True) -> None:
    if not isinstance(K, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(K).__name__}")
    if K.ndim != 4:
        raise ValueError(f"{name} must have shape [C_out, C_in, k, k], got {tuple(K.shape)}")
    if square and K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must map C channels to C channels, got shape {tuple(K.shape)}")
    kh, kw = K.shape[-2:]
    if kh % 2 != 1 or kw % 2 != 1:
        raise ValueError(f"{name} must have odd spatial sizes, got {kh}x{kw}")


def _centre_diag_mask(K: torch.Tensor) -> torch.Tensor:
    C = K.shape[0]
    kh, kw = K.shape[-2:]
    mask = torch.zeros_like(K, dtype=torch.bool)
    idx = torch.arange(C, device=K.device)
    mask[idx, idx, kh // 2, kw // 2] = True
    return mask


def conv_linf_contractive_kernel(T: torch.Tensor, *, gamma: float) -> torch.Tensor:
    """Kernel ``K`` with interior row measure ``<= gamma``: ``K = T`` except
    ``K[c, c, ctr] = gamma + T[c, c, ctr] - sum_{c', o} |T[c, c', o]|``.

    The materialised operator (zero padding, any size; circular padding, ``k <= H, W``) then has
    ``mu_inf <= gamma``. Differentiable in ``T``.
    """
    gamma = _check_gamma(gamma)
    _check_kernel(T, "T")
    mask = _centre_diag_mask(T)
    rows = T.abs().sum(dim=(1, 2, 3))  # [C]
    centre = torch.diagonal(T[:, :, T.shape[2] // 2, T.shape[3] // 2])
    new_centre = gamma + centre - rows
    K = torch.where(mask, torch.zeros_like(T), T)
    C = T.shape[0]
    idx = torch.arange(C, device=T.device)
    add = torch.zeros_like(T)
    add = add.index_put((idx, idx, torch.full_like(idx, T.shape[2] // 2), torch.full_like(idx, T.shape[3] // 2)),
                        new_centre)
    return K + add


def conv_kernel_measure_inf(K: torch.Tensor) -> torch.Tensor:
    """Interior row measure of the ``C -> C`` convolution: an upper bound of ``mu_inf`` of the
    materialised operator for every size (zero padding) and exact for circular padding with
    ``k <= H, W`` and for zero padding when ``H, W >= k`` (some row is interior)."""
    _check_kernel(K)
    kh, kw = K.shape[-2:]
    centre = torch.diagonal(K[:, :, kh // 2, kw // 2])
    return (centre + K.abs().sum(dim=(1, 2, 3)) - centre.abs()).max()


def conv_kernel_measure_1(K: torch.Tensor) -> torch.Tensor:
    """Interior column measure ``mu_1`` of the convolution (upper bound for every size, zero padding)."""
    _check_kernel(K)
    kh, kw = K.shape[-2:]
    centre = torch.diagonal(K[:, :, kh // 2, kw // 2])
    return (centre + K.abs().sum(dim=(0, 2, 3)) - centre.abs()).max()


def conv_kernel_norm_inf(K: torch.Tensor) -> torch.Tensor:
    """Upper bound (exact for interior rows) of the induced l-inf norm of a convolution:
    ``max_c sum_{c', o} |K[c, c', o]|``."""
    _check_kernel(K, square=False)
    return K.abs().sum(dim=(1, 2, 3)).max()


def conv_kernel_norm_1(K: torch.Tensor) -> torch.Tensor:
    """Upper bound of the induced l1 norm of a convolution: ``max_{c'} sum_{c, o} |K[c, c', o]|``."""
    _check_kernel(K, square=False)
    return K.abs().sum(dim=(0, 2, 3)).max()


def _conv(x: torch.Tensor, K: torch.Tensor, padding: Padding) -> torch.Tensor:
    ph, pw = K.shape[-2] // 2, K.shape[-1] // 2
    if padding == "zeros":
        return F.conv2d(x, K, padding=(ph, pw))
    if padding == "circular":
        return F.conv2d(F.pad(x, (pw, pw, ph, ph), mode="circular"), K)
    raise ValueError(f"padding must be 'zeros' or 'circular', got {padding!r}")


def _check_size(K: torch.Tensor, H: int, W: int, padding: Padding) -> None:
    if padding not in ("zeros", "circular"):
        raise ValueError(f"padding must be 'zeros' or 'circular', got {padding!r}")
    if H < 1 or W < 1:
        raise ValueError(f"image size must be positive, got {(H, W)}")
    if padding == "circular" and (K.shape[-2] > H or K.shape[-1] > W):
        raise ValueError(
            f"circular padding needs kernel size <= image size (no aliasing), got kernel "
            f"{tuple(K.shape[-2:])} for image {(H, W)}"
        )


def materialize_conv(K: torch.Tensor, H: int, W: int, *, padding: Padding = "zeros") -> torch.Tensor:
    """The ``(C_out H W) x (C_in H W)`` matrix of the convolution (row-major ``[C, H, W]`` order)."""
    _check_kernel(K, square=False)
    _check_size(K, H, W, padding)
    n_in = K.shape[1] * H * W
    eye = torch.eye(n_in, dtype=K.dtype, device=K.device).reshape(n_in, K.shape[1], H, W)
    cols = _conv(eye, K, padding).reshape(n_in, -1)  # column j = A e_j
    return cols.T.contiguous()


def conv_matrix_measure_inf(K: torch.Tensor, H: int, W: int, *, padding: Padding = "zeros") -> torch.Tensor:
    """Exact ``mu_inf`` of the materialised ``C -> C`` convolution on ``[C, H, W]`` maps, boundary
    effects included, without materialising: the absolute row sums are ``conv(ones, |K|)``."""
    _check_kernel(K)
    _check_size(K, H, W, padding)
    ones = torch.ones(1, K.shape[1], H, W, dtype=K.dtype, device=K.device)
    abs_rows = _conv(ones, K.abs(), padding)[0]  # [C, H, W]
    kh, kw = K.shape[-2:]
    centre = torch.diagonal(K[:, :, kh // 2, kw // 2])[:, None, None]
    return (abs_rows - centre.abs() + centre).max()


def average_step(diag: torch.Tensor) -> torch.Tensor:
    """Largest step of the average iteration allowed by the diagonal of ``A``:
    ``a = 1 / (1 - min_i min(a_ii, 0))`` (Jafarpour et al., NeurIPS 2021, Thm. 2).

    Why: for ``x, y`` the slope restriction of ``Phi`` gives
    ``G(x) - G(y) = ((1 - a) I + a Dg A)(x - y)`` with ``Dg = diag(d_i)``, ``d_i in [0, 1]``, for
    ``G(x) = (1 - a) x + a Phi(A x + B u + b)``. Row ``i`` of that matrix has absolute sum
    ``|1 - a + a d_i a_ii| + a d_i sum_{j != i} |a_ij|``; when ``1 - a + a d_i a_ii >= 0`` for all
    ``d_i in [0, 1]`` -- i.e. ``a <= 1 / (1 - min(a_ii, 0))`` -- it equals
    ``1 - a + a d_i mu_i(A) <= 1 - a (1 - mu^+)``, ``mu^+ = max(mu_inf(A), 0)``. The largest such
    ``a`` gives the smallest contraction factor ``rho = 1 - a (1 - mu^+)``.
    """
    return 1.0 / (1.0 - torch.clamp(diag.min(), max=0.0))
