DESCRIPTION = "CRD's banks are updated before the loss, so positives read the new rows"
FILE = 'kdzoo/losses/crd.py'
FIND = '''            negatives = self.sample_negatives(indices)
'''
REPLACE = '''            negatives = self.sample_negatives(indices)
            self._update_banks(f_s.detach(), f_t.detach(), indices)
'''
TESTS = ['tests/test_zoo_crd_mgd.py']
SELECT = 'crd_matches_float64'
