DESCRIPTION = "a record's fingerprint leaves out the views the training set makes"
FILE = 'kdzoo/records/fingerprint.py'
FIND = '''    extra = {} if views is None else dict(views=views)
'''
REPLACE = '''    extra = {}
'''
TESTS = ['tests/test_records_named_views.py']
SELECT = 'another_teacher_or_view'
