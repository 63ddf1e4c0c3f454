DESCRIPTION = "CA-MKD with one teacher divides by T - 1 = 0 instead of weighting it 1"
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''    if count == 1:
        return torch.ones_like(ce)
'''
REPLACE = ''''''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'camkd_of_one_or_identical'
