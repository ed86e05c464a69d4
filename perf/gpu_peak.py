"""The bf16 peak an MFU figure is measured against: one table for every perf script.

The H200 figure is the one this project states for its GPU machine (about 790 TFLOP/s of bf16 matrix work),
not the datasheet's 989 dense TFLOP/s, so MFUs printed by different scripts compare.
"""

from __future__ import annotations

PEAK_BF16_TFLOPS = {"H200": 790.0, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "4090": 165.2}


def peak_bf16_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a device from its name (torch.cuda.get_device_name), None when unknown."""
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in device_name), None)
