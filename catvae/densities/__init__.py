"""§3.5 Class densities p(z | y) of the encoded training set: the paper's diagonal Gaussian and its successors."""
