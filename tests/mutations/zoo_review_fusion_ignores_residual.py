DESCRIPTION = "ReviewKD's attention fusion drops the deeper level's residual (no review)"
FILE = 'kdzoo/models/review_kd.py'
FIND = '''            x = x * maps[:, 0:1] + residual * maps[:, 1:2]
'''
REPLACE = '''            x = x * maps[:, 0:1]
'''
TESTS = ['tests/test_zoo_review_kd.py']
SELECT = 'connector'
