DESCRIPTION = "default_hooks.X=None of kdzoo's keyed hooks goes to mmengine (bare AssertionError)"
FILE = 'kdzoo/engine/config_check.py'
FIND = '''                                if v is not None or k in MMENGINE_DEFAULT_HOOKS})'''
REPLACE = '''                                if True})'''
TESTS = ['tests/test_bad_input.py']
SELECT = 'none_removes'
