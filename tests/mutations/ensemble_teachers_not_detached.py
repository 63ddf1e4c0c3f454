DESCRIPTION = ("the multi-teacher losses do not detach the teachers' logits (gradient reaches "
               'the teachers)')
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''    return [t.detach() for t in teachers]
'''
REPLACE = '''    return list(teachers)
'''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'no_gradient_reaches'
