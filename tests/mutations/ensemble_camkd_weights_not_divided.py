DESCRIPTION = "CA-MKD's teacher weights 1 - softmax(CE) not divided by T - 1 (they sum to T - 1)"
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''    return rest / (count - 1)
'''
REPLACE = '''    return rest
'''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'camkd_matches_its_definition'
