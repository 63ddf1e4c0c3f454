DESCRIPTION = "MHCA's positional query channels are not divided by the attention scale"
FILE = 'kdzoo/models/students/mhca.py'
FIND = '''            pq, extra = pq / scale, POSITION_CHANNELS
'''
REPLACE = '''            pq, extra = pq, POSITION_CHANNELS
'''
TESTS = ['tests/test_dearkd_mhca.py']
SELECT = 'mask_free_mhca_matches'
