DESCRIPTION = "a loss's per-sample state is not checked against the training set's size"
FILE = 'kdzoo/engine/data_check_hook.py'
FIND = '''        if isinstance(size, int) and size != len(dataset):
'''
REPLACE = '''        if isinstance(size, int) and size < 0:
'''
TESTS = ['tests/test_term_lists_and_indices.py']
SELECT = 'sample_state'
