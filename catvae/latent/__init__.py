"""§3.5 Latent space: class statistics, generators, metrics (eq. 4–5), evaluation."""
