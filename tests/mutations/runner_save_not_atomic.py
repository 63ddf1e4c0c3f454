DESCRIPTION = ('Runner.save_checkpoint writes straight to epoch_N.pth, not through the atomic '
               'writer')
FILE = 'kdzoo/engine/runner.py'
FIND = '''        save_atomic(lambda tmp: save(osp.dirname(tmp), osp.basename(tmp)),
                    osp.join(out_dir, filename))
'''
REPLACE = '''        save(out_dir, filename)
'''
TESTS = ['tests/test_fault_injection.py']
SELECT = 'runner_save_dying_halfway'
