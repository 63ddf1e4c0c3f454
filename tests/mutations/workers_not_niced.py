DESCRIPTION = "data-loader workers keep the training process's CPU priority"
FILE = 'kdzoo/engine/runner.py'
FIND = '''            os.nice(increment)
'''
REPLACE = '''            pass
'''
TESTS = ['tests/test_loader_workers.py']
SELECT = 'niced'
