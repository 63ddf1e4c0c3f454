DESCRIPTION = 'pair mixup gives both images of a pair lam x_a + (1 - lam) x_b'
FILE = 'kdzoo/models/replay_preprocessor.py'
FIND = '''            out[idx] = w * inputs[idx] + (1 - w) * other[idx]
'''
REPLACE = '''            out[idx] = w * inputs[idx & ~1] + (1 - w) * inputs[idx | 1]
'''
TESTS = ['tests/test_replay_data.py']
SELECT = 'pairs_mix_with_each_other'
