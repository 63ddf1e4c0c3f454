DESCRIPTION = "each process draws the epoch's order from its own seed (data seed + rank)"
FILE = 'kdzoo/datasets/replay.py'
FIND = '''        return EpochOrder(len(self.dataset), self.data_seed,
'''
REPLACE = '''        return EpochOrder(len(self.dataset), self.data_seed + self.rank,
'''
TESTS = ['tests/test_record_ddp.py']
SELECT = 'two_processes'
