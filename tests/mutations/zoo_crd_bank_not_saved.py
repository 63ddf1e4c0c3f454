DESCRIPTION = "CRD's memory banks are not part of the checkpoint (non-persistent buffers)"
FILE = 'kdzoo/losses/crd.py'
FIND = '''            self.register_buffer(name, torch.rand(num_samples, feat_dim) * (2 * bound) - bound)
'''
REPLACE = '''            self.register_buffer(name, torch.rand(num_samples, feat_dim) * (2 * bound) - bound,
                                 persistent=False)
'''
TESTS = ['tests/test_zoo_training.py']
SELECT = 'bank'
