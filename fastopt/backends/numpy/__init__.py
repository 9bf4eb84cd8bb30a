"""The NumPy reference backend: each formula written plainly, computed in float64.

This is the oracle every other backend is tested against, and the
``backend="numpy"`` path. It favours readability over speed.
"""
