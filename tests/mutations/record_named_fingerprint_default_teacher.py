DESCRIPTION = "a named teacher's record is fingerprinted with model.teacher's config"
FILE = 'kdzoo/records/fingerprint.py'
FIND = '''        teacher=teacher_cfg(cfg, network),
'''
REPLACE = '''        teacher=teacher_cfg(cfg),
'''
TESTS = ['tests/test_records_named_views.py']
SELECT = 'another_teacher_or_view'
