"""§3.5 Generators: draw codes of a class from its density with the dials θ and n, then decode."""
