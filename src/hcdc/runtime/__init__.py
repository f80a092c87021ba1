"""The process hcdc runs in: BLAS threads, child processes, fault points, software versions.

Imports nothing of hcdc's layers, so every layer (science included) may use it.
"""
