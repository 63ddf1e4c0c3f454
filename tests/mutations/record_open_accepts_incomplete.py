DESCRIPTION = 'TeacherRecord.open reads a record whose header does not say complete'
FILE = 'kdzoo/records/teacher_record.py'
FIND = '''        if not header.get('complete'):
            missing = record.missing()
'''
REPLACE = '''        if False:
            missing = record.missing()
'''
TESTS = ['tests/test_teacher_record.py']
SELECT = 'open_refuses_incomplete'
