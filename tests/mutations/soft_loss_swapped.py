DESCRIPTION = 'the soft distillation loss swaps the student and the teacher in the KL divergence'
FILE = 'kdzoo/losses/logit_distill.py'
FIND = '''        kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=-1),
                      F.log_softmax(teacher_logits.float() / t, dim=-1),
'''
REPLACE = '''        kl = F.kl_div(F.log_softmax(teacher_logits.float() / t, dim=-1),
                      F.log_softmax(student_logits.float() / t, dim=-1),
'''
TESTS = ['tests/test_losses.py']
SELECT = 'soft_distill'
