"""pnp: Plug-and-Play solvers with convergence guarantees read from denoiser certificates."""
