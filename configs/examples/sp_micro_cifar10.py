# Similarity-preserving distillation (Tung and Mori, ICCV 2019) added to the hard
# distillation of ../deit/deit_micro_distilled_cifar10.py: the package's SPLoss
# (kdzoo/losses/similarity_preserving.py) between the student's second block (tokens) and
# the ResNet-20's layer2 (32 x 16 x 16), another pair of layers than DearKD's, no
# connector needed. Weight 3000: the paper's gamma for CIFAR-10.
#   python tools/train.py configs/examples/sp_micro_cifar10.py
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill=dict(sp=dict(loss=dict(type='SPLoss'), weight=3000.0,
                                  inputs=dict(student_features='student.blocks.1',
                                              teacher_features='teacher.layer2'))))
