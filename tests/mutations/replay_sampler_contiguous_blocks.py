DESCRIPTION = 'ReplaySampler deals each rank a contiguous block of pairs, not every W-th pair'
FILE = 'kdzoo/datasets/replay.py'
FIND = '''    q = np.arange(rank, padded, world_size) % pairs
'''
REPLACE = '''    share = padded // world_size
    q = np.arange(rank * share, (rank + 1) * share) % pairs
'''
TESTS = ['tests/test_replay_data.py']
SELECT = 'deals_whole_pairs or do_not_depend_on_the_world_size'
