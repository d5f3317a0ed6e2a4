import sys, json, torch
from pnp.resolve import resolve_denoiser
from denoisers.train import validate, validation_images
a_name, b_name, level, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
imgs, _ = validation_images(n)
A = resolve_denoiser(a_name, argument="a"); B = resolve_denoiser(b_name, argument="b")
cache = {}
def outs(y, s):
    k = (float(y.double().sum()), float(s))
    if k not in cache:
        with torch.no_grad():
            cache[k] = (A(y, s), B(y, s))
    return cache[k]
res = {}
for t in [0, 0.25, 0.4, 0.5, 0.6, 0.75, 1]:
    fn = lambda y, s: t * outs(y, s)[0] + (1 - t) * outs(y, s)[1]
    res[t] = validate(fn, imgs, level / 255, seed=0)
    print(f"t={t} ({a_name} weight) {res[t]:.3f}", flush=True)
json.dump(res, open(sys.argv[5], "w"))
