"""float64 NumPy references (filled in below)."""
