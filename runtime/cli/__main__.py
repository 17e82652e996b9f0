"""``python -m cam_rt.runtime.cli``: the ``cam-rt`` command."""

from . import main

main()
