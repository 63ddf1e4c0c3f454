DESCRIPTION = "ReviewKD's fusion swaps its two attention maps (own feature and residual)"
FILE = 'kdzoo/models/review_kd.py'
FIND = '''            x = x * maps[:, 0:1] + residual * maps[:, 1:2]
'''
REPLACE = '''            x = x * maps[:, 1:2] + residual * maps[:, 0:1]
'''
TESTS = ['tests/test_zoo_review_kd.py']
SELECT = 'attention_maps or float64_reference'
