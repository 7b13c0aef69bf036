"""tines.kernels: hot ops, a torch reference each and a Triton twin used on CUDA."""
