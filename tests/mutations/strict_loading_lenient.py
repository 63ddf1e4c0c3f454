DESCRIPTION = ('fit_state_dict accepts a checkpoint that misses student keys (strict loading '
               'turned lenient)')
FILE = 'kdzoo/models/checkpoint.py'
FIND = '''    if missing or unexpected:
'''
REPLACE = '''    if unexpected:
'''
TESTS = ['tests/test_resume_exact.py']
SELECT = 'loading_is_strict'
