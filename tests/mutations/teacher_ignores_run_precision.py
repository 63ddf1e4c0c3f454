DESCRIPTION = 'a teacher without its own bf16 runs in float32 inside a bf16 run'
FILE = 'kdzoo/models/teacher.py'
FIND = '''img_size=None, bf16=None,'''
REPLACE = '''img_size=None, bf16=False,'''
TESTS = ['tests/test_precision.py']
SELECT = 'follow_the_run'
