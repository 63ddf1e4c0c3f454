DESCRIPTION = ("CA-MKD's teacher weights computed with gradient (from the teachers' logits, not "
               'detached)')
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''    ce = torch.stack([-F.log_softmax(z.detach().float(), dim=-1)'''
REPLACE = '''    ce = torch.stack([-F.log_softmax(z.float(), dim=-1)'''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'no_gradient_reaches'
