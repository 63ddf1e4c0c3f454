DESCRIPTION = 'a named teacher read by a term is run whether or not the term is active'
FILE = 'kdzoo/models/distiller.py'
FIND = '''            if any(s.network == network for s in sources):
                with self.teacher_recorders[network]'''
REPLACE = '''            if True:
                with self.teacher_recorders[network]'''
TESTS = ['tests/test_teachers.py']
SELECT = 'only_when'
