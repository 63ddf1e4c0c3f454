# The CPU-scale DearKD student of dearkd_cifar10.py: width 128, depth 4 (3 MHCA + 1 MHSA
# blocks), 8 heads; its hidden term reads the last MHCA block, blocks.2.
_base_ = ['./dearkd_cifar10.py']
model = dict(student=dict(arch=None, embed_dim=128, num_heads=8, depth=4, num_mhca_blocks=3),
             distill=dict(hidden_layer3=dict(inputs=dict(student_features='student.blocks.2'))))
