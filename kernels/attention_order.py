"""The order in which the fused attention kernels run their (query block, batch*head) tiles,
shared by the Triton kernels (`kernels.attention`) and the Gluon one (`kernels.flash_gluon`)."""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tile_of(tile, num_m, num_heads, head_group, CAUSAL: tl.constexpr):
    """(query block, batch*head) of tile number `tile`, in the order the tiles should run."""
    if CAUSAL:
        # Longest first: query block i sees i+1 key blocks. The heads go in
        # groups of head_group; within a group the tiles run from the last
        # query block to the first, every head of the group at one block before
        # the next block, so the grid ends on the shortest tiles of all.
        # The group bounds the K and V that programs running together read
        # (`causal_head_group` sizes it to L2). head_group = 1 is the plain
        # order: head by head, each from its last query block to its first.
        group = tile // (head_group * num_m)
        first = group * head_group
        size = tl.minimum(head_group, num_heads - first)
        rank = tile - group * head_group * num_m
        pid_m = num_m - 1 - rank // size
        bh = first + rank % size
    else:
        pid_m = tile % num_m
        bh = tile // num_m
    return pid_m, bh


def causal_head_group(seq_len: int, head_dim: int, esize: int, num_heads: int, l2_bytes: int) -> int:
    """How many heads the causal kernel's longest-first order takes together: as many as
    have their K and V (2*S*D*esize bytes each) fit in half of L2, at least one. The
    programs that run at once then share a few heads' K and V in L2 instead of each
    streaming its own from HBM."""
    kv_bytes = 2 * seq_len * head_dim * esize
    return max(1, min(num_heads, (l2_bytes // 2) // kv_bytes))
