DESCRIPTION = ('RKDLoss averages the angle term over all B^3 triplets (repeated samples '
               'included) instead of the distinct ones')
FILE = 'kdzoo/losses/rkd.py'
FIND = '''    return (i != j) & (k != j) & (i != k)'''
REPLACE = '''    return (i == i) & (j == j) & (k == k)'''
TESTS = ['tests/test_zoo_feature_losses.py']
SELECT = 'rkd_matches'
