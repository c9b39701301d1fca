"""Compatibility layers: other systems' APIs backed by pond."""
