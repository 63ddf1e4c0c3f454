DESCRIPTION = 'the sweep writes its summary only when every run has finished'
FILE = 'kdzoo/apis/sweep.py'
FIND = '''        if i < len(runs):  # the summary so far; the last one is written below
            write_report(records, work_dir, metric, log=lambda line: None)
'''
REPLACE = ''
TESTS = ['tests/test_sweep.py']
SELECT = 'interrupted_sweep_keeps_the_summary'
