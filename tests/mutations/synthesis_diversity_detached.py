DESCRIPTION = "the synthesizer's intra-divergence term is detached (logged, not optimised)"
FILE = 'kdzoo/synthesis/synthesizer.py'
FIND = '''            div = self.diversity(self._features.flatten(1).float(), labels)
'''
REPLACE = '''            div = self.diversity(self._features.flatten(1).float().detach(), labels)
'''
TESTS = ['tests/test_dfkd_synthesizer.py']
SELECT = 'each_term and diversity'
