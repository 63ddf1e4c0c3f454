DESCRIPTION = "seeded_global_rngs leaves the sample's seeds in the global generators"
FILE = 'kdzoo/datasets/replay.py'
FIND = '''    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
'''
REPLACE = '''    yield
'''
TESTS = ['tests/test_replay_data.py']
SELECT = 'leaves_the_global_generators'
