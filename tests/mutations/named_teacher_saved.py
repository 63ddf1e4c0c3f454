DESCRIPTION = 'named teachers are saved in checkpoints (only the default teacher is dropped)'
FILE = 'kdzoo/models/teachers.py'
FIND = '''                if any(k.startswith(f'{prefix}{child}.') for child in TEACHER_CHILDREN)]:
'''
REPLACE = '''                if k.startswith(f'{prefix}teacher.')]:
'''
TESTS = ['tests/test_teachers.py']
SELECT = 'saved'
