DESCRIPTION = "HCL counts a pool size equal to the map (a second full-resolution term)"
FILE = 'kdzoo/losses/review_kd.py'
FIND = '''        if size > h or size > w or (h, w) == (size, size):
'''
REPLACE = '''        if size > h or size > w:
'''
TESTS = ['tests/test_zoo_review_kd.py']
SELECT = 'hcl'
