"""Commands' engines above a run: seed evaluation, latency benchmarks, the environment report,
int8 quantization, Triton repositories.
"""
