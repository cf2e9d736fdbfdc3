"""Speed: the compiled engine, 8-bit linears, prefix sharing, the benchmark and the GPU profiler. Nothing in the
method (classifier, pruning, denoising error) imports from here; adapters use ``prefix_sharing`` when asked to."""
