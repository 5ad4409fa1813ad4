"""Evaluation: metrics (PSNR-Y/RGB, bpp), x264/x265 baselines at matched bpp, the RD evaluation
of a checkpoint on real clips (``rd``), its reports, and the ``mptvc eval`` command (``cli``)."""
