DESCRIPTION = 'of two stage switches in a config chain, the inherited one wins over the child'
FILE = 'kdzoo/engine/config_check.py'
FIND = '''        elif own:
            last = own[0]'''
REPLACE = '''        elif own and last is None:
            last = own[0]'''
TESTS = ['tests/test_dearkd_stage.py']
SELECT = 'child_config_switch_replaces'
