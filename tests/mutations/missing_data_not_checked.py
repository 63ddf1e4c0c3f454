DESCRIPTION = 'tools/train.py builds the run without checking that its image folders exist'
FILE = 'tools/train.py'
FIND = '''    missing = missing_data(cfg, ('train_dataloader', 'val_dataloader'))
    if missing:'''
REPLACE = '''    missing = missing_data(cfg, ('train_dataloader', 'val_dataloader'))
    if False:'''
TESTS = ['tests/test_command_line.py']
SELECT = 'missing_data_before_any_work'
