"""Zero-initialising a residual branch's last norm makes a fresh block pass its input through (after the ReLU)."""

import torch
from fixtures.residual_blocks import TextbookBasicBlock

from residual_course.initialization import zero_init_last_norm


def test_zeroing_the_last_norm_makes_a_block_relu_of_its_input():
    block = TextbookBasicBlock(8, 8)
    x = torch.randn(4, 8, 6, 6)
    zero_init_last_norm(block, x)
    block.eval()
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))
