DESCRIPTION = "a named teacher read from a record has no accuracy in validation"
FILE = 'kdzoo/models/distiller.py'
FIND = '''            elif self._record_ranks_reported(self.recorded[network]):
'''
REPLACE = '''            elif False:
'''
TESTS = ['tests/test_records_named_views.py']
SELECT = 'accuracy_comes_from'
