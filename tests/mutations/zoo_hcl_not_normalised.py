DESCRIPTION = "HCL's pyramid is not divided by the sum of its weights"
FILE = 'kdzoo/losses/review_kd.py'
FIND = '''    return loss / total
'''
REPLACE = '''    return loss
'''
TESTS = ['tests/test_zoo_review_kd.py']
SELECT = 'hcl'
