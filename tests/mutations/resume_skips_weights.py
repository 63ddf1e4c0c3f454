DESCRIPTION = 'on resume the weights are not loaded (optimizer and epoch still restored)'
FILE = 'kdzoo/engine/runner.py'
FIND = '''        fit_state_dict(model, state, path,
'''
REPLACE = '''        if not getattr(self, '_resuming', False):
            fit_state_dict(model, state, path,
'''
TESTS = ['tests/test_resume_exact.py']
SELECT = 'resumed_model_holds or resumed_steps'
