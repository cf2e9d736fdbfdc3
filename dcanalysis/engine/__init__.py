"""The optional engine: what runs a loaded adapter's network faster without changing the method (``EngineConfig``):
compilation for one batch shape, prefix sharing, 8-bit linears, an attention back end, host work overlapped with
the GPU's. Nothing in the method, the adapters or the runs imports from here."""
