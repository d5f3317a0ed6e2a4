"""Figures of BENCHMARKS.md (issue 14, loss crop): lambda, mu, profile drift and training loss of the
committed training states. Run from the repository root: python benchmarks/results/issue14/crop/summarise_states.py"""
import json, sys, torch
from denoisers.checkpoint import load_checkpoint
from denoisers.ridge import RidgeConfig, RidgeRegularizer
torch.set_grad_enabled(False)
d = "benchmarks/results/issue14/crop/"
for n in ("crr-crop6", "crr-long14", "crr-crop12", "crr-widen16"):
    t, m = load_checkpoint(d + n + "-state.safetensors", kind="ridge-train-state")
    reg = RidgeRegularizer(RidgeConfig.from_dict(m["architecture"]))
    reg.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    s = torch.tensor([25 / 255]); f = reg.f_plus
    a = torch.linspace(0.125, f.range, 64).view(1, 1, -1).expand(1, f.channels, -1).contiguous()
    odd = 0.5 * (f(a) - f(-a)); clip = a.clamp(max=1.0)
    dev = float((odd - clip).abs()[a <= 4.0].max())
    loss = [json.loads(l)["loss"] for l in open(d + n + "-log.jsonl")]
    w = [sum(loss[i:i + 250]) / len(loss[i:i + 250]) for i in range(0, len(loss), 250)]
    print(f"{n}: step {m['step']}, lambda(25/255) {float(reg.lambda_of(s)):.2f}, mu(25/255) {float(reg.mu_of(s)):.0f}, "
          f"max |f_odd - clip| on [0, 4] {dev:.3f}, loss per 250 steps (1e-3) {[round(v * 1e3, 3) for v in w]}")
