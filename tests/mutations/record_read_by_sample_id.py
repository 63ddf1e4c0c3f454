DESCRIPTION = "RecordedTeacher looks a view up by the sample id instead of the position"
FILE = 'kdzoo/models/recorded_teacher.py'
FIND = '''        for i, (data_seed, epoch, position, _) in enumerate(keys):
'''
REPLACE = '''        for i, (data_seed, epoch, _, position) in enumerate(keys):
'''
TESTS = ['tests/test_record_ddp.py']
SELECT = 'one_process_reads'
