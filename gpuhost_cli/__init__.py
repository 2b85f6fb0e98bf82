"""gpuhost: turn Debian and Ubuntu machines with NVIDIA GPUs into GPU container hosts."""

__version__ = "0.1.0"
