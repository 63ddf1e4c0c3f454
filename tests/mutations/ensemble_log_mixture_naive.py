DESCRIPTION = ("the ensemble's log-probabilities taken as the log of the averaged probabilities "
               '(-inf where they underflow)')
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''        return torch.logsumexp(logs + w.log().view(-1, 1, 1), dim=0)
'''
REPLACE = '''        return torch.log((logs.exp() * w.view(-1, 1, 1)).sum(dim=0))
'''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'underflows or confident_teacher_next'
