DESCRIPTION = "a view pipeline's transforms are seeded by their position, so one left out shifts the draws of the rest"
FILE = 'kdzoo/datasets/views.py'
FIND = '''            transform, (TRANSFORM_TAG, zlib.crc32(name.encode()), rank))
'''
REPLACE = '''            transform, (TRANSFORM_TAG, i, 0))
'''
TESTS = ['tests/test_views.py']
SELECT = 'view_pipeline'
