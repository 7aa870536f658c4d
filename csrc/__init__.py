"""C++/CUDA kernel sources of ganblocks.ops, shipped so an installed copy can compile them."""
