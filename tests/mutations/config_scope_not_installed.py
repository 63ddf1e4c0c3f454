DESCRIPTION = "kdzoo does not install its 'kdzoo::' base resolution (users' child configs break)"
FILE = 'kdzoo/__init__.py'
FIND = '''install_config_scope()  # _base_'''
REPLACE = '''(lambda: None)()  # _base_'''
TESTS = ['tests/test_command_line.py']
SELECT = 'inherits_a_shipped_one'
