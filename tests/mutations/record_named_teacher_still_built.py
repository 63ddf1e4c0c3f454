DESCRIPTION = 'a named teacher read from its record is built (and loaded) all the same'
FILE = 'kdzoo/models/distiller.py'
FIND = '''        self.teachers = torch.nn.ModuleDict(build_teachers(named, skip))
'''
REPLACE = '''        self.teachers = torch.nn.ModuleDict(build_teachers(named))
'''
TESTS = ['tests/test_records_named_views.py']
SELECT = 'train_as_both'
