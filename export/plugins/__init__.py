"""CUDA warping plugins for the TensorRT decoder engines (contract: ``spec``)."""
