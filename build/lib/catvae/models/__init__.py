"""§3.3–3.4 The networks, the VAE's objectives, and the two LightningModules."""
