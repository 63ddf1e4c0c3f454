DESCRIPTION = 'ReplayDataset seeds a sample by its position instead of its sample id'
FILE = 'kdzoo/datasets/replay.py'
FIND = '''        with seeded_global_rngs(data_seed, epoch, sample_id, SAMPLE_TAG):
'''
REPLACE = '''        with seeded_global_rngs(data_seed, epoch, position, SAMPLE_TAG):
'''
TESTS = ['tests/test_replay_data.py']
SELECT = 'same_sample_whatever_came_before'
