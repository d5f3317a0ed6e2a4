"""Certificate and weakly convex part of a wcrr training state (rho, nu, kappa, largest |f-| coefficient).

    python benchmarks/results/issue14/implicit/wcrr_state.py STATE INIT
    e.g. benchmarks/results/issue14/implicit/wimpl-state.safetensors benchmarks/results/issue14/implicit/wimpl-init-wcrr.safetensors
"""
import sys

from safetensors.torch import load_file

from denoisers.ridge.train import load_ridge

reg, _ = load_ridge(sys.argv[2])
st = load_file(sys.argv[1])
reg.load_state_dict({k[len("model."):]: v for k, v in st.items() if k.startswith("model.")})
print(f"rho {reg.certificate().weak_convexity:.5f}, nu {reg.nu().item():.4f}, kappa {reg.kappa().item():.1f}, "
      f"max |f- coefficient| {reg.f_minus.coefficients.detach().abs().max().item():.4f}")
