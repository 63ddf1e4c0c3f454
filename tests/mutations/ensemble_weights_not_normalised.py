DESCRIPTION = "EnsembleKDLoss's teacher weights used as given, not normalised to sum to 1"
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''    return tuple(float(w) / total for w in weights)
'''
REPLACE = '''    return tuple(float(w) for w in weights)
'''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'weights_are_normalised or options_match'
