DESCRIPTION = "the recording tool runs a teacher with a view on the student's batch"
FILE = 'kdzoo/apis/record_teacher.py'
FIND = '''                inputs = teacher_input(source, network, data['inputs'], data.get('views'))
'''
REPLACE = '''                inputs = data['inputs']
'''
TESTS = ['tests/test_records_named_views.py']
SELECT = 'recorded_on_its_view or train_as_both'
