"""Everything that talks to ONNX Runtime: execution providers and their options, the local
session, remote sessions (Triton, Ray, any callable).

- ``ort``: importing onnxruntime, its exception classes, provider names, opening sessions
- ``providers``: CUDA, TensorRT and OpenVINO options, TensorRT shape profiles (pure logic)
- ``layout``, ``plain``: a file's input and outputs (cam-rt metadata, or a ``PlainModel``)
- ``shapes``: IO-bound runs, sessions compiled per input shape, CUDA graphs
- ``outputs``: raw outputs -> checked scores and CAMs (shared by local and remote sessions)
- ``session``: ``SessionConfig`` and ``CamSession``; ``remote``: ``RemoteSession``
- ``onnx_file``: a file's metadata read without ONNX Runtime
"""
