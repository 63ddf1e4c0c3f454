DESCRIPTION = 'every process downloads a URL teacher, not one per host and cache folder'
FILE = 'kdzoo/models/checkpoint.py'
FIND = '''    if keys.index(key) == rank:'''
REPLACE = '''    if True:'''
TESTS = ['tests/test_distributed.py']
SELECT = 'uneven_groups'
