DESCRIPTION = 'the sweep gives every run seed 0, whatever its --seeds say'
FILE = 'kdzoo/apis/sweep.py'
FIND = '''    cfg.merge_from_dict({'randomness.seed': seed})
'''
REPLACE = '''    cfg.merge_from_dict({'randomness.seed': 0})
'''
TESTS = ['tests/test_sweep.py']
SELECT = 'seeds_set_the_runs_randomness'
