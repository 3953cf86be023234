"""Scoring samples: eq. 4–5 (cosine similarity, accuracy), the judge, FID/PRDC/CAS, latent views."""
