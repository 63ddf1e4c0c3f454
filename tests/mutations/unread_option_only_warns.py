DESCRIPTION = 'tools/train.py goes on when a --cfg-options key is read by nothing'
FILE = 'tools/train.py'
FIND = '''    if unread and not args.allow_unread:'''
REPLACE = '''    if unread and False:'''
TESTS = ['tests/test_bad_input.py']
SELECT = 'unread_cfg_option_stops'
