DESCRIPTION = "kdzoo's Runner.resume does not restore the optimizer's state"
FILE = 'kdzoo/engine/runner.py'
FIND = '''            return super().resume(filename, *args, **kwargs)
'''
REPLACE = '''            return super().resume(filename, resume_optimizer=False)
'''
TESTS = ['tests/test_resume_exact.py']
SELECT = 'optimizer_and_schedulers'
