DESCRIPTION = "MGD generates from the unmasked student map"
FILE = 'kdzoo/losses/mgd.py'
FIND = '''            generated = self.generation(s * mask)
'''
REPLACE = '''            generated = self.generation(s)
'''
TESTS = ['tests/test_zoo_crd_mgd.py']
SELECT = 'mgd_matches_float64'
