"""Runs over many files, as a pipeline of steps: discover (``inputs``), decode and explain
(``steps``), render and write (``render``, ``grid``), record (``records``); ``runner`` holds the
frame every engine shares and the local engine, ``ray_engine`` the Ray one; ``io`` reads and
writes image and array files.
"""
