DESCRIPTION = "TeacherRecordHook does not compare the record's fingerprint with the run's"
FILE = 'kdzoo/engine/teacher_record_hook.py'
FIND = '''        differences = fingerprint_differences(record.fingerprint, run)
'''
REPLACE = '''        differences = []
'''
TESTS = ['tests/test_offline_teacher.py']
SELECT = 'record_of_another_run_is_refused'
