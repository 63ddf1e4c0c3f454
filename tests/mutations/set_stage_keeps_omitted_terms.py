DESCRIPTION = 'Distiller.set_stage leaves the terms it is not given at full weight instead of off'
FILE = 'kdzoo/models/distiller.py'
FIND = '''        self._multipliers = {name: float(multipliers.get(name, 0.0)) for name in self.terms}
'''
REPLACE = '''        self._multipliers = {name: float(multipliers.get(name, 1.0)) for name in self.terms}
'''
TESTS = ['tests/test_distiller_terms.py']
SELECT = 'stage2_runs_no_teacher'
