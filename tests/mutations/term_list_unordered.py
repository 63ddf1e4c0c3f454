DESCRIPTION = 'a list-bound argument receives its tensors in recording order, not in the order given'
FILE = 'kdzoo/models/distill_term.py'
FIND = '''                return [lookup(s) for s in value]
'''
REPLACE = '''                return [lookup(s) for s in sorted(value, key=lambda s: s.text)]
'''
TESTS = ['tests/test_term_lists_and_indices.py']
SELECT = 'list'
