"""Seconds per iteration of the variational solver (crr prior on the torus, s = 0.0212, half lambda), 40
iterations on set12 01, levin:0, 7.65/255. Usage: python var_iter.py SHARED_DATA CRR_CIRCULAR_WEIGHTS"""
import sys, time
import numpy as np, torch
torch.set_num_threads(1)
from operators import FFTBlur, load_kernel
from denoisers.ridge.train import load_ridge
from pnp.solvers.variational import VariationalRidge
from skimage.io import imread
x = torch.tensor(imread(sys.argv[1] + '/set12/01.png').astype(np.float32) / 255)[None, None]
k = load_kernel('levin:0')
A = FFTBlur(k)
np.random.seed(0)
y = A(x) + 0.03 * torch.tensor(np.random.normal(0, 1, x.shape).astype(np.float32))
reg, _ = load_ridge(sys.argv[2])
r = VariationalRidge(A, y, reg, sigma=0.0212, lam_scale=0.5, max_iter=40, tol=1e-9).run()
print(float(r.history.time.mean()))
