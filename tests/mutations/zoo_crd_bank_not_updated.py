DESCRIPTION = "CRD's memory banks are never updated with the batch's embeddings"
FILE = 'kdzoo/losses/crd.py'
FIND = '''            if self.training:
                self._update_banks(f_s.detach(), f_t.detach(), indices)
'''
REPLACE = '''            pass
'''
TESTS = ['tests/test_zoo_crd_mgd.py']
SELECT = 'crd_matches_float64'
