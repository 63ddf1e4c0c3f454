DESCRIPTION = "CRD's negatives may be the sample's own index"
FILE = 'kdzoo/losses/crd.py'
FIND = '''        return draws + (draws >= indices.unsqueeze(1)).long()
'''
REPLACE = '''        return draws + (draws >= indices.unsqueeze(1)).long() * 0
'''
TESTS = ['tests/test_zoo_crd_mgd.py']
SELECT = 'sample_negatives'
