DESCRIPTION = 'AtomicCheckpointHook writes last_checkpoint in place, as mmengine does'
FILE = 'kdzoo/engine/checkpoint_hook.py'
FIND = '''        write_text_atomic(osp.join(runner.work_dir, POINTER), self.last_ckpt)
'''
REPLACE = '''        with open(osp.join(runner.work_dir, POINTER), 'w') as f:
            f.write(self.last_ckpt)
'''
TESTS = ['tests/test_fault_injection.py']
SELECT = 'runner_pointer_write_dying_halfway'
