DESCRIPTION = "the teacher is run on the student's batch although it asks for its own view"
FILE = 'kdzoo/models/teachers.py'
FIND = '''    if getattr(teacher, 'view_spec', None) is None:
        return inputs
'''
REPLACE = '''    if True:
        return inputs
'''
TESTS = ['tests/test_views.py']
SELECT = 'reads_its_view'
