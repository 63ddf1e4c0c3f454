DESCRIPTION = "--cfg-options values with dicts go to mmengine's parser (which recurses)"
FILE = 'kdzoo/apis/tool_args.py'
FIND = '''    if 'dict(' not in text and '{' not in text:'''
REPLACE = '''    if True:'''
TESTS = ['tests/test_command_line.py']
SELECT = 'dict_values_are_python_literals'
